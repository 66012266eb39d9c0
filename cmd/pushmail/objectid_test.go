package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestObjectIDsMatchJMAP: IMAP's OBJECTID ids (RFC 8474) are the HTTP
// API's ids for the same objects (imapd/objectid.go). A message delivered
// by swaks shows the same EMAILID and THREADID over IMAP as its id and
// threadId in JMAP's Email/get, before and after an IMAP MOVE (which
// keeps the EMAILID, RFC 8474 §5.1); MAILBOXID is the JMAP Mailbox id of
// both mailboxes, and Email/get's mailboxIds shows the move.
func TestObjectIDsMatchJMAP(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	if _, err := exec.LookPath("swaks"); err != nil {
		t.Skip("swaks not installed")
	}
	t.Parallel()
	data := t.TempDir()
	srv := startServer(t, data)
	cli(t, "secret\n", "user", "add", "alice@localhost", "--data", data, "--password-stdin")
	swaks(t, srv.addr("smtp"), "alice@localhost", "object ids")

	c := dialIMAPText(t, srv.addr("imap"))
	c.cmd("LOGIN alice@localhost secret")
	inbox := c.match(c.cmd("SELECT INBOX"), `\* OK \[MAILBOXID \(([A-Za-z0-9_-]+)\)\]`)
	fetch := c.cmd("UID FETCH 1 (EMAILID THREADID)")
	emailID := c.match(fetch, `EMAILID \(([A-Za-z0-9_-]+)\)`)
	threadID := c.match(fetch, `THREADID \(([A-Za-z0-9_-]+)\)`)
	archive := c.match(c.cmd("CREATE Moved"), `OK \[MAILBOXID \(([A-Za-z0-9_-]+)\)\]`)

	j := jmapClient{t: t, base: "http://" + srv.addr("http")}
	j.account = j.session()
	got := j.email(emailID)
	if got.ID != emailID || got.ThreadID != threadID || !got.MailboxIDs[inbox] || len(got.MailboxIDs) != 1 {
		t.Errorf("JMAP Email/get of %s = %+v; want id %s, threadId %s, mailboxIds {%s}", emailID, got, emailID, threadID, inbox)
	}
	names := j.mailboxes()
	if names[inbox] != "INBOX" || names[archive] != "Moved" {
		t.Errorf("JMAP Mailbox/get: %v; want %s INBOX and %s Moved", names, inbox, archive)
	}

	c.cmd("UID MOVE 1 Moved")
	moved := c.match(c.cmd("SELECT Moved"), `\* OK \[MAILBOXID \(([A-Za-z0-9_-]+)\)\]`)
	fetch = c.cmd("UID FETCH 1 (EMAILID THREADID)")
	if id := c.match(fetch, `EMAILID \(([A-Za-z0-9_-]+)\)`); id != emailID || moved != archive {
		t.Errorf("after MOVE: EMAILID %s in mailbox %s; want %s in %s", id, moved, emailID, archive)
	}
	if id := c.match(fetch, `THREADID \(([A-Za-z0-9_-]+)\)`); id != threadID {
		t.Errorf("after MOVE: THREADID %s; want %s", id, threadID)
	}
	got = j.email(emailID)
	if got.ID != emailID || !got.MailboxIDs[archive] || len(got.MailboxIDs) != 1 {
		t.Errorf("JMAP Email/get after MOVE = %+v; want id %s in mailbox %s only", got, emailID, archive)
	}
}

// imapText is a line-level IMAP client: the test reads the ids out of
// the responses as they are written.
type imapText struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
	n    int
}

func dialIMAPText(t *testing.T, addr string) *imapText {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if err := conn.SetDeadline(time.Now().Add(30 * time.Second)); err != nil {
		t.Fatal(err)
	}
	c := &imapText{t: t, conn: conn, r: bufio.NewReader(conn)}
	if _, err := c.r.ReadString('\n'); err != nil {
		t.Fatalf("greeting: %v", err)
	}
	return c
}

// cmd sends one command and returns its responses up to the tagged one,
// which must be OK.
func (c *imapText) cmd(line string) string {
	c.t.Helper()
	c.n++
	tag := fmt.Sprintf("t%d", c.n)
	if _, err := fmt.Fprintf(c.conn, "%s %s\r\n", tag, line); err != nil {
		c.t.Fatal(err)
	}
	var out strings.Builder
	for {
		l, err := c.r.ReadString('\n')
		if err != nil {
			c.t.Fatalf("%s: %v\n%s", line, err, out.String())
		}
		out.WriteString(l)
		if strings.HasPrefix(l, tag+" ") {
			if !strings.HasPrefix(l, tag+" OK") {
				c.t.Fatalf("%s: %s", line, out.String())
			}
			return out.String()
		}
	}
}

// match returns the first group of re in text.
func (c *imapText) match(text, re string) string {
	c.t.Helper()
	m := regexp.MustCompile(re).FindStringSubmatch(text)
	if m == nil {
		c.t.Fatalf("no %s in\n%s", re, text)
	}
	return m[1]
}

// jmapClient calls the HTTP API as alice.
type jmapClient struct {
	t       *testing.T
	base    string
	account string
}

func (j *jmapClient) do(method, path string, body any, out any) {
	j.t.Helper()
	var rd *bytes.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			j.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, err := http.NewRequestWithContext(j.t.Context(), method, j.base+path, rd)
	if err != nil {
		j.t.Fatal(err)
	}
	req.SetBasicAuth("alice@localhost", "secret")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		j.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		j.t.Fatalf("%s %s: %s", method, path, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		j.t.Fatalf("%s %s: %v", method, path, err)
	}
}

// session returns the primary mail account's id.
func (j *jmapClient) session() string {
	var s struct {
		PrimaryAccounts map[string]string `json:"primaryAccounts"`
	}
	j.do("GET", "/.well-known/jmap", nil, &s)
	return s.PrimaryAccounts["urn:ietf:params:jmap:mail"]
}

// call makes one method call and decodes its arguments into out.
func (j *jmapClient) call(name string, args map[string]any, out any) {
	j.t.Helper()
	args["accountId"] = j.account
	req := map[string]any{
		"using":       []string{"urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"},
		"methodCalls": []any{[]any{name, args, "c"}},
	}
	var resp struct {
		MethodResponses [][3]json.RawMessage `json:"methodResponses"`
	}
	j.do("POST", "/jmap/api", req, &resp)
	if len(resp.MethodResponses) != 1 {
		j.t.Fatalf("%s: %d responses", name, len(resp.MethodResponses))
	}
	var got string
	if err := json.Unmarshal(resp.MethodResponses[0][0], &got); err != nil || got != name {
		j.t.Fatalf("%s: answered %s", name, resp.MethodResponses[0][1])
	}
	if err := json.Unmarshal(resp.MethodResponses[0][1], out); err != nil {
		j.t.Fatal(err)
	}
}

type jmapEmail struct {
	ID         string          `json:"id"`
	ThreadID   string          `json:"threadId"`
	MailboxIDs map[string]bool `json:"mailboxIds"`
}

// email returns Email/get's view of one email.
func (j *jmapClient) email(id string) jmapEmail {
	j.t.Helper()
	var out struct {
		List     []jmapEmail `json:"list"`
		NotFound []string    `json:"notFound"`
	}
	j.call("Email/get", map[string]any{"ids": []string{id}, "properties": []string{"id", "threadId", "mailboxIds"}}, &out)
	if len(out.List) != 1 {
		j.t.Fatalf("Email/get %s: %d emails, not found %v", id, len(out.List), out.NotFound)
	}
	return out.List[0]
}

// mailboxes returns Mailbox/get's mailboxes, id to name.
func (j *jmapClient) mailboxes() map[string]string {
	j.t.Helper()
	var out struct {
		List []struct {
			ID   string `json:"id"`
			Name string `json:"name"`
		} `json:"list"`
	}
	j.call("Mailbox/get", map[string]any{"ids": nil}, &out)
	names := map[string]string{}
	for _, m := range out.List {
		names[m.ID] = m.Name
	}
	return names
}
