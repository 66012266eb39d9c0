package main

import (
	"io"
	"strconv"
	"strings"
	"testing"
)

// TestBenchLatencyChanges runs "bench latency --change flags|expunge" at
// tiny sizes: every watcher sees every change, and the JSON decodes. It
// never looks at timings.
func TestBenchLatencyChanges(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		change   changeKind
		watchers int
		client   string
	}{
		{"flags, imapclient watcher", changeFlags, 1, "imapclient"},
		{"flags, raw watchers", changeFlags, 4, "raw"},
		{"expunge, imapclient watcher", changeExpunge, 1, "imapclient"},
		{"expunge, raw watchers", changeExpunge, 4, "raw"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			const changes = 5
			var res latencyResult
			runBenchJSON(t, &res, "latency", "--change", string(tc.change), "--watchers", strconv.Itoa(tc.watchers),
				"--messages", strconv.Itoa(changes), "--size", "600")
			if res.Change != tc.change || res.Watchers != tc.watchers || res.Client != tc.client {
				t.Errorf("result = change %q, %d watchers, client %q; want %q, %d, %q", res.Change, res.Watchers, res.Client, tc.change, tc.watchers, tc.client)
			}
			p := res.ChangePush
			if p == nil {
				t.Fatal("no change_push in the result")
			}
			if p.Missed != 0 {
				t.Errorf("missed = %d, want 0", p.Missed)
			}
			if p.FromOK.N != tc.watchers*changes || p.FromCommand.N != tc.watchers*changes {
				t.Errorf("push samples = %d and %d, want %d", p.FromOK.N, p.FromCommand.N, tc.watchers*changes)
			}
			for name, n := range map[string]int{"all_notified": p.AllNotified.N, "command_to_all": p.CommandToAll.N, "spread": p.Spread.N, "command_round_trip": p.RoundTrip.N} {
				if n != changes {
					t.Errorf("%s has %d samples, want one per change, %d", name, n, changes)
				}
			}
			if res.Push.FromAck.N != 0 {
				t.Errorf("push (new mail) has %d samples, want none", res.Push.FromAck.N)
			}
		})
	}
}

func TestBenchLatencyBadChange(t *testing.T) {
	t.Parallel()
	if code := run([]string{"bench", "latency", "--change", "rename", "--quiet", "--dir", t.TempDir()}, strings.NewReader(""), io.Discard, io.Discard); code == 0 {
		t.Errorf("bench latency --change rename: exit 0, want an error")
	}
}

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
