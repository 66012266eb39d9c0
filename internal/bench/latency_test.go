package bench

import "testing"

func TestParseChangeLines(t *testing.T) {
	t.Parallel()
	tests := []struct {
		line    string
		parse   func([]byte) (uint32, bool)
		n       uint32
		ok      bool
		comment string
	}{
		{"* 3 EXPUNGE\r\n", parseExpunge, 3, true, "expunge"},
		{"* 3 EXISTS\r\n", parseExpunge, 0, false, "exists is no expunge"},
		{"* EXPUNGE\r\n", parseExpunge, 0, false, "no number"},
		{"* 7 FETCH (UID 9 FLAGS (\\Seen))\r\n", parseFetchSeen, 7, true, "uid and flags"},
		{"* 7 FETCH (FLAGS (\\Deleted \\Seen) UID 9)\r\n", parseFetchSeen, 7, true, "flags first"},
		{"* 7 FETCH (FLAGS (\\Deleted))\r\n", parseFetchSeen, 0, false, "not seen"},
		{"* 7 FETCH (UID 9)\r\n", parseFetchSeen, 0, false, "no flags"},
		{"a1 OK 7 FETCH (FLAGS (\\Seen))\r\n", parseFetchSeen, 0, false, "tagged"},
	}
	for _, tc := range tests {
		if n, ok := tc.parse([]byte(tc.line)); n != tc.n || ok != tc.ok {
			t.Errorf("%s: parse(%q) = %d, %v; want %d, %v", tc.comment, tc.line, n, ok, tc.n, tc.ok)
		}
	}
}
