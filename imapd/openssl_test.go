package imapd

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
)

// TestOpenSSLStartTLS runs a session through "openssl s_client -starttls
// imap", which negotiates STARTTLS itself (CAPABILITY, STARTTLS) and
// verifies the certificate against the test CA, then passes the test's
// commands through: LOGIN, SELECT, FETCH, STORE \Deleted on one message,
// EXPUNGE, LOGOUT. The transcript must read as RFC 9051 says and the
// store must have lost exactly the \Deleted message.
func TestOpenSSLStartTLS(t *testing.T) {
	t.Parallel()
	openssl := lookTool(t, "openssl", "openssl")
	env := newTLSEnv(t)
	want := env.deliverN(t, 3)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, openssl, "s_client", "-starttls", "imap", "-quiet",
		"-connect", env.addr, "-CAfile", env.pki.caFile, "-verify_return_error", "-verify_ip", "127.0.0.1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start openssl: %v", err)
	}
	s := &scriptedSession{t: t, in: stdin, out: newResponseReader(stdout)}
	defer func() {
		stdin.Close()
		if err := cmd.Wait(); err != nil {
			t.Errorf("openssl s_client: %v\nstderr: %s", err, stderr.String())
		}
		if t.Failed() {
			t.Logf("transcript:\n%s\nopenssl stderr:\n%s", s.transcript.String(), stderr.String())
		}
	}()

	s.expect("a1 LOGIN "+testUser+" "+testPassword, `^a1 OK`)
	// The first session to see them: RFC 3501 §2.3.2 \Recent.
	s.expect("a2 SELECT INBOX", `^\* 3 EXISTS$`, `^\* 3 RECENT$`, `^\* OK \[UIDVALIDITY \d+\]`, `^\* OK \[UIDNEXT 4\]`, `^a2 OK \[READ-WRITE\]`)
	s.expect("a3 FETCH 1:3 (UID FLAGS)", `^\* 1 FETCH \(UID 1 FLAGS \(\\Recent\)\)$`, `^\* 3 FETCH \(UID 3 FLAGS \(\\Recent\)\)$`, `^a3 OK`)
	resp := s.expect("a4 UID FETCH 2 (BODY.PEEK[])", `^\* 2 FETCH \(UID 2 BODY\[\] \{\d+\}\)$`, `^a4 OK`)
	if !slices.ContainsFunc(resp.literals, func(l string) bool { return l == string(want[2]) }) {
		t.Errorf("UID FETCH 2 BODY.PEEK[]: literals %q, the store holds %q", resp.literals, want[2])
	}
	s.expect(`a5 STORE 2 +FLAGS (\Deleted)`, `^\* 2 FETCH \(FLAGS \(\\Deleted \\Recent\)\)$`, `^a5 OK`)
	env.checkFlags(t, "INBOX", map[imap.UID][]string{1: nil, 2: {`\Deleted`}, 3: nil})
	resp = s.expect("a6 EXPUNGE", `^\* 2 EXPUNGE$`, `^a6 OK`)
	if n := len(expungeLines(resp.lines)); n != 1 {
		t.Errorf("EXPUNGE sent %d EXPUNGE responses, want 1: %q", n, resp.lines)
	}
	delete(want, 2)
	env.checkStored(t, "INBOX", want)
	s.expect("a7 LOGOUT", `^\* BYE`, `^a7 OK`)
	stdin.Close()
	// The server closes the connection after LOGOUT; s_client then ends.
	if rest, err := io.ReadAll(s.out.r); err != nil || len(rest) != 0 {
		t.Errorf("after LOGOUT: %q, %v; want the connection closed", rest, err)
	}
	env.checkStored(t, "INBOX", want)
	env.checkFlags(t, "INBOX", map[imap.UID][]string{1: nil, 3: nil})
}

// scriptedSession writes commands to a client's stdin and reads the
// server's responses from its stdout, as a terminal user would.
type scriptedSession struct {
	t          *testing.T
	in         io.Writer
	out        *responseReader
	transcript strings.Builder
}

// response is what the server answered one command: its lines (literals
// replaced by their {n}) and literals.
type response struct {
	lines    []string
	literals []string
}

// expect sends a tagged command and reads up to its tagged reply; each
// pattern must match one of the lines, in order.
func (s *scriptedSession) expect(command string, patterns ...string) response {
	s.t.Helper()
	fmt.Fprintf(&s.transcript, "C: %s\n", command)
	if _, err := io.WriteString(s.in, command+"\r\n"); err != nil {
		s.t.Fatalf("send %q: %v", command, err)
	}
	tag, _, _ := strings.Cut(command, " ")
	var resp response
	for {
		line, literals, err := s.out.read(10 * time.Second)
		if err != nil {
			s.t.Fatalf("%s: %v after %q", command, err, resp.lines)
		}
		fmt.Fprintf(&s.transcript, "S: %s\n", line)
		resp.lines = append(resp.lines, line)
		resp.literals = append(resp.literals, literals...)
		if strings.HasPrefix(line, tag+" ") {
			break
		}
	}
	i := 0
	for _, p := range patterns {
		re := regexp.MustCompile(p)
		for i < len(resp.lines) && !re.MatchString(resp.lines[i]) {
			i++
		}
		if i == len(resp.lines) {
			s.t.Errorf("%s: no line matches %s (in order) in\n%s", command, p, strings.Join(resp.lines, "\n"))
			return resp
		}
		i++
	}
	return resp
}

// responseReader reads IMAP response lines, with their literals, from a
// client's output.
type responseReader struct {
	r *bufio.Reader
}

type responseLine struct {
	line     string
	literals []string
	err      error
}

var literalSuffix = regexp.MustCompile(`\{(\d+)\}$`)

func newResponseReader(r io.Reader) *responseReader {
	return &responseReader{r: bufio.NewReader(r)}
}

// read returns the next response line within timeout.
func (rr *responseReader) read(timeout time.Duration) (string, []string, error) {
	done := make(chan responseLine, 1)
	go func() { done <- rr.readLine() }()
	select {
	case l := <-done:
		return l.line, l.literals, l.err
	case <-time.After(timeout):
		// The goroutine ends when the test's deadline kills the client.
		return "", nil, fmt.Errorf("no response line within %v", timeout)
	}
}

func (rr *responseReader) readLine() responseLine {
	var out responseLine
	for {
		part, err := rr.r.ReadString('\n')
		if err != nil {
			out.err = fmt.Errorf("read: %w (after %q)", err, out.line+part)
			return out
		}
		part = strings.TrimSuffix(strings.TrimSuffix(part, "\n"), "\r")
		out.line += part
		m := literalSuffix.FindStringSubmatch(part)
		if m == nil {
			return out
		}
		n, _ := strconv.Atoi(m[1])
		lit := make([]byte, n)
		if _, err := io.ReadFull(rr.r, lit); err != nil {
			out.err = fmt.Errorf("read literal: %w", err)
			return out
		}
		out.literals = append(out.literals, string(lit))
	}
}
