package imapd

import (
	"bufio"
	"context"
	"net"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
)

// TestLoginIDN: an account whose domain is internationalized logs in with
// the domain in U-labels or in A-labels, whichever form it was added in
// (RFC 5890 §2.3.2.1: they are one domain), with LOGIN and with
// AUTHENTICATE PLAIN, and reaches its own INBOX.
func TestLoginIDN(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, envOptions{})
	ctx := context.Background()
	for _, u := range []string{"info@bücher.example", "kontakt@xn--mller-kva.example"} {
		if _, err := env.store.AddUser(ctx, u, "idn-secret"); err != nil {
			t.Fatalf("AddUser(%s) = %v", u, err)
		}
	}
	for _, tc := range []struct {
		name, login string
	}{
		{"A-label for a U-label account", "info@xn--bcher-kva.example"},
		{"U-label for a U-label account", "info@bücher.example"},
		{"U-label for an A-label account", "kontakt@müller.example"},
		{"A-label in capitals", "KONTAKT@XN--MLLER-KVA.EXAMPLE"},
	} {
		t.Run("LOGIN "+tc.name, func(t *testing.T) {
			nc, err := net.DialTimeout("tcp", env.addr, waitTimeout)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { nc.Close() })
			c := &rawConn{t: t, conn: nc, r: bufio.NewReader(nc)}
			c.readLine()
			// A literal carries the UTF-8 user name in any IMAP mode.
			tag := c.send("LOGIN {%d+}\r\n%s idn-secret", len(tc.login), tc.login)
			for {
				line := c.readLine()
				if rest, ok := strings.CutPrefix(line, tag+" "); ok {
					if !strings.HasPrefix(rest, "OK") {
						t.Fatalf("LOGIN %s: %s", tc.login, line)
					}
					break
				}
			}
			// The account's own INBOX: empty, unlike the test user's.
			if untagged := c.ok("SELECT INBOX"); !hasLine(untagged, "* 0 EXISTS") {
				t.Errorf("SELECT INBOX after LOGIN %s: %q, want * 0 EXISTS", tc.login, untagged)
			}
		})
		t.Run("AUTHENTICATE "+tc.name, func(t *testing.T) {
			c, err := imapclient.DialInsecure(env.addr, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			if err := c.Authenticate(sasl.NewPlainClient("", tc.login, "idn-secret")); err != nil {
				t.Fatalf("AUTHENTICATE PLAIN %s = %v", tc.login, err)
			}
		})
	}
}
