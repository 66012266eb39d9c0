package imapd

import "testing"

func TestBaseSubject(t *testing.T) {
	tests := []struct {
		name, in, want string
		reply          bool
	}{
		{"plain", "Hello", "Hello", false},
		{"re", "Re: Hello", "Hello", true},
		{"re upper no space", "RE:Hello", "Hello", true},
		{"re re", "Re: re: Hello", "Hello", true},
		{"fw", "Fw: Hello", "Hello", true},
		{"fwd", "FWD: Hello", "Hello", true},
		{"re with blob", "Re [2]: Hello", "Hello", true},
		{"blob then re", "[list] Re: Hello", "Hello", true},
		{"two blobs then re", "[a][b] Re: Hello", "Hello", true},
		{"leading blob alone", "[list] Hello", "Hello", false},
		{"blob is all", "[list]", "[list]", false},
		{"blob and space is all", "[list]   ", "[list]", false},
		{"fwd trailer", "Hello (fwd)", "Hello", true},
		{"fwd trailer twice", "Hello (FWD) (fwd)  ", "Hello", true},
		{"fwd wrapper", "[Fwd: Hello]", "Hello", true},
		{"re in fwd wrapper", "Re: [fwd: Re: Hello (fwd)]", "Hello", true},
		{"whitespace collapses", "Hello \t  world", "Hello world", false},
		{"folded", "Re:\r\n Hello", "Hello", true},
		{"leading and trailing space", "   Hello   ", "Hello", false},
		{"empty", "", "", false},
		{"spaces only", "   ", "", false},
		{"re alone", "Re:", "", true},
		{"not a prefix", "Rename: Hello", "Rename: Hello", false},
		{"reply word", "Regarding Hello", "Regarding Hello", false},
		{"unclosed blob", "[list Hello", "[list Hello", false},
		{"colon later", "Re Hello: x", "Re Hello: x", false},
		{"utf8", "Re: café", "café", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, reply := baseSubject(tt.in)
			if got != tt.want || reply != tt.reply {
				t.Errorf("baseSubject(%q) = %q, %v; want %q, %v", tt.in, got, reply, tt.want, tt.reply)
			}
		})
	}
}

func TestOrderedSet(t *testing.T) {
	tests := []struct {
		in   []uint64
		want string
	}{
		{[]uint64{1}, "1"},
		{[]uint64{1, 2, 3}, "1:3"},
		{[]uint64{3, 2, 1}, "3,2,1"},
		{[]uint64{5, 6, 7, 1, 2, 9}, "5:7,1:2,9"},
	}
	for _, tt := range tests {
		if got := orderedSet(tt.in); got != tt.want {
			t.Errorf("orderedSet(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
