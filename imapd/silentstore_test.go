package imapd

import (
	"slices"
	"strings"
	"testing"
)

// A STORE .SILENT tells the client its own change, not the flags as a
// whole (RFC 9051 §6.4.6). Another session's change from before it, not
// yet sent, must still reach the client, as the flags the STORE left; it
// used to be dropped as "older than what the client knows", and the
// client's flags stayed wrong until it fetched them again.
// TestIMAPMultiClientConsistency (cmd/pushmail) found it.
func TestSilentStoreKeepsOthersChanges(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// steps run in order; "a:" and "b:" name the session.
		steps []string
		// want is A's FETCH responses to its last two commands (the
		// STORE .SILENT, then NOOP).
		want []string
	}{
		{
			name: "older change by another session",
			steps: []string{
				`a:FETCH 1 (FLAGS)`,
				`b:STORE 1 +FLAGS (\Flagged)`,
			},
			want: []string{`* 1 FETCH (UID 1 FLAGS (\Seen \Flagged \Recent))`},
		},
		{
			name: "older change already fetched",
			steps: []string{
				`b:STORE 1 +FLAGS (\Flagged)`,
				`a:FETCH 1 (FLAGS)`,
			},
			want: nil,
		},
		{
			name: "change by another session between two silent STOREs",
			steps: []string{
				`a:FETCH 1 (FLAGS)`,
				`a:STORE 1 +FLAGS.SILENT (\Answered)`,
				`b:STORE 1 +FLAGS (\Flagged)`,
			},
			want: []string{`* 1 FETCH (UID 1 FLAGS (\Seen \Answered \Flagged \Recent))`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env := newTestEnv(t, envOptions{})
			env.deliver(t, testMessage(1))
			a, b := env.raw(t), env.raw(t)
			// A selects first: the message is \Recent to A alone
			// (RFC 3501 §2.3.2).
			a.ok("SELECT INBOX")
			b.ok("SELECT INBOX")
			for _, step := range tt.steps {
				c := a
				if strings.HasPrefix(step, "b:") {
					c = b
				}
				c.ok("%s", step[2:])
			}
			lines := a.ok(`STORE 1 +FLAGS.SILENT (\Seen)`)
			lines = append(lines, a.ok("NOOP")...)
			var got []string
			for _, l := range lines {
				if strings.Contains(l, " FETCH ") {
					got = append(got, l)
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("A's FETCH responses after STORE .SILENT and NOOP = %q, want %q", got, tt.want)
			}
			// Whatever was sent, A now knows what the store holds.
			got = a.ok("FETCH 1 (FLAGS)")
			for i, l := range got {
				got[i] = strings.Replace(l, ` \Recent`, "", 1)
			}
			if want := b.ok("FETCH 1 (FLAGS)"); !slices.Equal(got, want) {
				t.Errorf("A's FETCH FLAGS = %q, B's = %q", got, want)
			}
		})
	}
}
