package bench

import "testing"

func TestParseExists(t *testing.T) {
	t.Parallel()
	tests := []struct {
		line string
		n    uint32
		ok   bool
	}{
		{"* 7 EXISTS\r\n", 7, true},
		{"* 4294967295 EXISTS\r\n", 4294967295, true},
		{"* 4294967296 EXISTS\r\n", 0, false},
		{"* 7 RECENT\r\n", 0, false},
		{"* OK [UIDNEXT 8] Predicted next UID\r\n", 0, false},
		{"* EXISTS\r\n", 0, false},
		{"a1 OK 7 EXISTS\r\n", 0, false},
	}
	for _, tc := range tests {
		if n, ok := parseExists([]byte(tc.line)); n != tc.n || ok != tc.ok {
			t.Errorf("parseExists(%q) = %d, %v; want %d, %v", tc.line, n, ok, tc.n, tc.ok)
		}
	}
}

func TestLiteralSize(t *testing.T) {
	t.Parallel()
	tests := []struct {
		line string
		n    int
		ok   bool
	}{
		{"* 1 FETCH (BODY[] {1081}\r\n", 1081, true},
		{"* 1 FETCH (BODY[] {12+}\r\n", 12, true},
		{"* 1 FETCH (FLAGS (\\Seen))\r\n", 0, false},
		{"* OK {x}\r\n", 0, false},
	}
	for _, tc := range tests {
		if n, ok := literalSize([]byte(tc.line)); n != tc.n || ok != tc.ok {
			t.Errorf("literalSize(%q) = %d, %v; want %d, %v", tc.line, n, ok, tc.n, tc.ok)
		}
	}
}
