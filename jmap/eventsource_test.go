package jmap

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"pushmail/mailstore"
)

// sseEvent is one server-sent event.
type sseEvent struct {
	name, id, data string
}

// sseStream is an open event source, read by a Go SSE reader.
type sseStream struct {
	resp *http.Response
	r    *bufio.Reader
}

func (e *testEnv) openEvents(t *testing.T, query, lastEventID string) *sseStream {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), "GET", e.url+"/jmap/eventsource?"+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(testUser, testPassword)
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("event source: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	return &sseStream{resp: resp, r: bufio.NewReader(resp.Body)}
}

// next reads the next event; io.EOF when the server ended the stream.
// The test's context bounds the wait.
func (s *sseStream) next() (sseEvent, error) {
	var ev sseEvent
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			return ev, err
		}
		line = strings.TrimRight(line, "\n")
		if line == "" {
			if ev.name != "" || ev.data != "" {
				return ev, nil
			}
			continue
		}
		k, v, _ := strings.Cut(line, ":")
		v = strings.TrimPrefix(v, " ")
		switch k {
		case "event":
			ev.name = v
		case "id":
			ev.id = v
		case "data":
			ev.data += v
		}
	}
}

// nextState reads events up to the next state event and returns its
// changed types for alice's account.
func (s *sseStream) nextState(t *testing.T, account string) (map[string]string, sseEvent) {
	t.Helper()
	for {
		ev, err := s.next()
		if err != nil {
			t.Fatalf("reading event stream: %v", err)
		}
		if ev.name != "state" {
			continue
		}
		var sc struct {
			Type    string                       `json:"@type"`
			Changed map[string]map[string]string `json:"changed"`
		}
		if err := json.Unmarshal([]byte(ev.data), &sc); err != nil || sc.Type != "StateChange" {
			t.Fatalf("state event %q: %v", ev.data, err)
		}
		return sc.Changed[account], ev
	}
}

// TestEventSource: a delivery (as SMTP makes it), an IMAP-side flag
// change and a mailbox creation each push a StateChange naming what
// changed, with the states Email/get and Mailbox/get then report; the
// types parameter filters; ping keeps the stream alive.
func TestEventSource(t *testing.T) {
	t.Parallel()
	env := newEnv(t, Limits{})
	acct := env.account()
	stream := env.openEvents(t, "types=*&closeafter=no&ping=1", "")
	mailboxOnly := env.openEvents(t, "types=Mailbox&closeafter=no&ping=0", "")

	env.deliver(t, "From: a@example.org\nSubject: hi\n\nx\n")
	changed, _ := stream.nextState(t, acct)
	emailState := env.call1(t, "Email/get", map[string]any{"ids": []string{}})["state"].(string)
	mailboxState := env.call1(t, "Mailbox/get", map[string]any{"ids": []string{}})["state"].(string)
	if changed["Email"] != emailState || changed["Thread"] != emailState || changed["Mailbox"] != mailboxState || changed["EmailDelivery"] == "" {
		t.Errorf("after a delivery: %v; want Email and Thread %s, Mailbox %s, EmailDelivery", changed, emailState, mailboxState)
	}
	if got, _ := mailboxOnly.nextState(t, acct); len(got) != 1 || got["Mailbox"] != mailboxState {
		t.Errorf("types=Mailbox after a delivery: %v; want Mailbox only", got)
	}

	// A flag change made as IMAP makes it: Email changes, no delivery.
	if _, err := env.store.StoreFlags(context.Background(), env.user.Mailbox, mailstore.UIDSetOf(1), mailstore.FlagsAdd, []string{mailstore.FlagFlagged}, 0); err != nil {
		t.Fatal(err)
	}
	changed, _ = stream.nextState(t, acct)
	if changed["Email"] == "" || changed["Email"] == emailState || changed["EmailDelivery"] != "" {
		t.Errorf("after a flag change: %v; want a new Email state and no EmailDelivery", changed)
	}
	// The Mailbox-only stream heard nothing of it: its next event is the
	// mailbox creation's.
	if _, err := env.store.CreateMailbox(context.Background(), env.user.User, "New", ""); err != nil {
		t.Fatal(err)
	}
	if got, _ := mailboxOnly.nextState(t, acct); len(got) != 1 || got["Mailbox"] == "" || got["Mailbox"] == mailboxState {
		t.Errorf("types=Mailbox after a flag change then a creation: %v; want one new Mailbox state", got)
	}
	// A ping arrives (ping=1: every second).
	for {
		ev, err := stream.next()
		if err != nil {
			t.Fatal(err)
		}
		if ev.name == "ping" {
			if ev.data != `{"interval":1}` {
				t.Errorf("ping data %q", ev.data)
			}
			break
		}
	}
}

// TestEventSourceLongPoll: closeafter=state ends the response after the
// first state event; Last-Event-ID from an earlier event makes a change
// made in between reported at once, so a long-polling client loses
// nothing; bad parameters are refused.
func TestEventSourceLongPoll(t *testing.T) {
	t.Parallel()
	env := newEnv(t, Limits{})
	acct := env.account()
	poll := env.openEvents(t, "types=*&closeafter=state&ping=0", "")
	env.deliver(t, "From: a@example.org\nSubject: one\n\nx\n")
	_, first := poll.nextState(t, acct)
	if _, err := poll.next(); err != io.EOF {
		t.Errorf("after the state event with closeafter=state: %v; want the end of the stream", err)
	}
	// Between two polls, another delivery.
	env.deliver(t, "From: a@example.org\nSubject: two\n\nx\n")
	again := env.openEvents(t, "types=Email&closeafter=state&ping=0", first.id)
	changed, _ := again.nextState(t, acct)
	emailState := env.call1(t, "Email/get", map[string]any{"ids": []string{}})["state"].(string)
	if changed["Email"] != emailState {
		t.Errorf("poll with Last-Event-ID after a missed delivery: %v; want Email %s at once", changed, emailState)
	}
	for _, q := range []string{"types=Nope", "closeafter=maybe", "ping=-1"} {
		if status, _ := env.do(t, "GET", "/jmap/eventsource?"+q, testUser, testPassword, nil); status != http.StatusBadRequest {
			t.Errorf("%s: %d; want 400", q, status)
		}
	}
}

// TestEventSourceClose: Close ends open streams, so the HTTP server's
// Shutdown does not wait for them.
func TestEventSourceClose(t *testing.T) {
	t.Parallel()
	env := newEnv(t, Limits{})
	stream := env.openEvents(t, "types=*&closeafter=no&ping=0", "")
	env.srv.Close()
	if _, err := stream.next(); err != io.EOF {
		t.Errorf("stream after Close: %v; want its end", err)
	}
}

// TestEventSourceCurl: curl -N, a client nobody here wrote, receives the
// StateChange of a delivery made after it connected.
func TestEventSourceCurl(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl not installed")
	}
	env := newEnv(t, Limits{})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "curl", "-sS", "-N", "-u", testUser+":"+testPassword,
		env.url+"/jmap/eventsource?types=Email&closeafter=state&ping=0")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(out)
	// The stream's opening comment says it is open: then deliver.
	if line, err := r.ReadString('\n'); err != nil || line != ": open\n" {
		t.Fatalf("curl's first line %q, %v; want the opening comment", line, err)
	}
	env.deliver(t, "From: a@example.org\nSubject: curl\n\nx\n")
	rest, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("curl: %v", err)
	}
	emailState := env.call1(t, "Email/get", map[string]any{"ids": []string{}})["state"].(string)
	want := `"changed":{"` + env.account() + `":{"Email":"` + emailState + `"}}`
	if !strings.Contains(string(rest), "event: state") || !strings.Contains(string(rest), want) {
		t.Errorf("curl received %q; want a state event with %s", rest, want)
	}
}
