package imapd

import (
	"bufio"
	"encoding/base64"
	"net"
	"strings"
	"testing"
)

// TestAuthenticatePlainReplies: AUTHENTICATE PLAIN logs in; a malformed response
// is the client's error (BAD), not the server's (NO [SERVERBUG]); another
// authorization identity is refused.
func TestAuthenticatePlainReplies(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, envOptions{})
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	tests := []struct {
		name     string
		response string // the client's response to the empty challenge
		want     string // the start of the tagged reply
	}{
		{"two fields", b64("\x00" + testUser), "BAD [CLIENTBUG] Malformed SASL response"},
		{"empty", "", "BAD [CLIENTBUG] Malformed SASL response"},
		{"other identity", b64("bob@localhost\x00" + testUser + "\x00" + testPassword), "NO [AUTHORIZATIONFAILED]"},
		{"wrong password", b64("\x00" + testUser + "\x00wrong"), "NO [AUTHENTICATIONFAILED]"},
		{"right password", b64("\x00" + testUser + "\x00" + testPassword), "OK"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := net.DialTimeout("tcp", e.addr, waitTimeout)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { conn.Close() })
			c := &rawConn{t: t, conn: conn, r: bufio.NewReader(conn)}
			c.readLine() // greeting
			if _, err := c.conn.Write([]byte("a1 AUTHENTICATE PLAIN\r\n")); err != nil {
				t.Fatal(err)
			}
			if line := c.readLine(); !strings.HasPrefix(line, "+") {
				t.Fatalf("AUTHENTICATE PLAIN: %q, want a continuation request", line)
			}
			if _, err := c.conn.Write([]byte(tt.response + "\r\n")); err != nil {
				t.Fatal(err)
			}
			line := c.readLine()
			for strings.HasPrefix(line, "* ") {
				line = c.readLine()
			}
			if got, ok := strings.CutPrefix(line, "a1 "); !ok || !strings.HasPrefix(got, tt.want) {
				t.Errorf("AUTHENTICATE PLAIN with %q: %q, want a1 %s…", tt.response, line, tt.want)
			}
		})
	}
}
