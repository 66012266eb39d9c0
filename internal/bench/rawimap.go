package bench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// rawIMAP is a minimal IMAP client: it sends commands as text and reads
// lines until the tagged reply, skipping literals. It keeps a watcher's
// footprint small (one goroutine, a 512-byte reader) where ten thousand of
// them share the machine with the server, and its reading costs little
// beside the server's work when a command's reply is timed.
//
// It is test-quality code, written against pushmail's own server: TLS
// only as a client that trusts any certificate, no parser for responses beyond the few lines the bench reads
// (EXISTS, EXPUNGE, FETCH FLAGS), no quoting beyond what LOGIN needs.
type rawIMAP struct {
	conn net.Conn
	r    *bufio.Reader
	line []byte // the last line read, valid until the next read
	tag  int
	// literal is the number of literal bytes the last command's replies
	// carried.
	literal int
}

// dialRawIMAP connects and reads the greeting.
func dialRawIMAP(ctx context.Context, d *net.Dialer, addr string, bufSize int) (*rawIMAP, error) {
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return newRawIMAP(conn, bufSize)
}

// dialRawIMAPS connects with implicit TLS (RFC 8314 §3.3), trusting any
// certificate: the bench's own server has a self-signed one.
func dialRawIMAPS(ctx context.Context, d *net.Dialer, addr string, bufSize int) (*rawIMAP, error) {
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	tc := tls.Client(conn, &tls.Config{InsecureSkipVerify: true, ServerName: "localhost"})
	if err := tc.HandshakeContext(ctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("TLS handshake: %w", err)
	}
	return newRawIMAP(tc, bufSize)
}

// newRawIMAP reads the greeting on conn.
func newRawIMAP(conn net.Conn, bufSize int) (*rawIMAP, error) {
	c := &rawIMAP{conn: conn, r: bufio.NewReaderSize(conn, bufSize)}
	line, err := c.readLine()
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("read greeting: %w", err)
	}
	if !bytes.HasPrefix(line, []byte("* OK")) {
		conn.Close()
		return nil, fmt.Errorf("greeting: %q", bytes.TrimSpace(line))
	}
	return c, nil
}

// readLine reads one line, CRLF included, into c.line. A line that ends
// with a literal's announcement {N} is followed by N bytes, which are
// skipped (and counted), and by the rest of the response, which is read
// as the next line.
func (c *rawIMAP) readLine() ([]byte, error) {
	c.line = c.line[:0]
	for {
		frag, err := c.r.ReadSlice('\n')
		c.line = append(c.line, frag...)
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err != nil {
			return nil, err
		}
		break
	}
	if n, ok := literalSize(c.line); ok {
		if _, err := c.r.Discard(n); err != nil {
			return nil, err
		}
		c.literal += n
	}
	return c.line, nil
}

// literalSize reports the size N of a line ending in "{N}" or "{N+}".
func literalSize(line []byte) (int, bool) {
	l := bytes.TrimSuffix(line, []byte("\r\n"))
	if len(l) < 3 || l[len(l)-1] != '}' {
		return 0, false
	}
	open := bytes.LastIndexByte(l, '{')
	if open < 0 {
		return 0, false
	}
	n, err := strconv.Atoi(strings.TrimSuffix(string(l[open+1:len(l)-1]), "+"))
	return n, err == nil && n >= 0
}

// command sends one command and reads up to its tagged reply, calling fn
// (if not nil) for every other line. A reply other than OK is an error,
// and so is a BYE.
func (c *rawIMAP) command(cmd string, fn func(line []byte)) error {
	c.tag++
	tag := "b" + strconv.Itoa(c.tag)
	c.literal = 0
	if _, err := fmt.Fprintf(c.conn, "%s %s\r\n", tag, cmd); err != nil {
		return err
	}
	return c.readUntil(tag+" ", fn)
}

// logout ends the session: BYE, then the tagged OK (RFC 9051 §6.1.3).
func (c *rawIMAP) logout() error {
	err := c.command("LOGOUT", nil)
	if errors.Is(err, errBye) {
		err = c.readUntil("b"+strconv.Itoa(c.tag)+" ", nil)
	}
	return errors.Join(err, c.conn.Close())
}

// errBye reports an untagged BYE: the server is closing the connection.
var errBye = errors.New("* BYE")

// readUntil reads lines up to the one starting with prefix; that line must
// say OK (or, for "+ ", be a continuation request).
func (c *rawIMAP) readUntil(prefix string, fn func(line []byte)) error {
	for {
		line, err := c.readLine()
		if err != nil {
			return err
		}
		if bytes.HasPrefix(line, []byte(prefix)) {
			if rest := line[len(prefix):]; !bytes.HasPrefix(rest, []byte("OK")) && prefix != "+ " {
				return fmt.Errorf("%s", bytes.TrimSpace(line))
			}
			return nil
		}
		if bytes.HasPrefix(line, []byte("* BYE")) {
			return fmt.Errorf("%w: %s", errBye, bytes.TrimSpace(line[5:]))
		}
		if fn != nil {
			fn(line)
		}
	}
}

// login sends LOGIN with quoted strings (RFC 9051 §4.3).
func (c *rawIMAP) login(user, password string) error {
	return c.command("LOGIN "+quoteIMAP(user)+" "+quoteIMAP(password), nil)
}

// selectInbox selects INBOX and returns its message count.
func (c *rawIMAP) selectInbox() (uint32, error) {
	var n uint32
	var seen bool
	err := c.command("SELECT INBOX", func(line []byte) {
		if v, ok := parseExists(line); ok {
			n, seen = v, true
		}
	})
	if err == nil && !seen {
		err = errors.New("SELECT INBOX: no EXISTS")
	}
	return n, err
}

// idle starts IDLE (RFC 2177) and returns once the server is idling.
func (c *rawIMAP) idle() error {
	c.tag++
	if _, err := fmt.Fprintf(c.conn, "b%d IDLE\r\n", c.tag); err != nil {
		return err
	}
	return c.readUntil("+ ", nil)
}

func quoteIMAP(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`)
	return `"` + r.Replace(s) + `"`
}

// parseExists recognises "* N EXISTS".
func parseExists(line []byte) (uint32, bool) {
	n, rest, ok := parseUntagged(line)
	if !ok || string(rest) != "EXISTS" {
		return 0, false
	}
	return n, true
}

// parseExpunge recognises "* N EXPUNGE".
func parseExpunge(line []byte) (uint32, bool) {
	n, rest, ok := parseUntagged(line)
	if !ok || string(rest) != "EXPUNGE" {
		return 0, false
	}
	return n, true
}

// parseFetchSeen recognises "* N FETCH (...)" whose flags include \Seen
// and returns N.
func parseFetchSeen(line []byte) (uint32, bool) {
	n, rest, ok := parseUntagged(line)
	if !ok || !bytes.HasPrefix(rest, []byte("FETCH (")) {
		return 0, false
	}
	_, flags, ok := bytes.Cut(rest, []byte("FLAGS ("))
	if !ok {
		return 0, false
	}
	flags, _, ok = bytes.Cut(flags, []byte(")"))
	if !ok {
		return 0, false
	}
	for _, f := range bytes.Fields(flags) {
		if bytes.EqualFold(f, []byte(`\Seen`)) {
			return n, true
		}
	}
	return 0, false
}

// parseUntagged splits "* N REST" (CRLF removed) into N and REST.
func parseUntagged(line []byte) (uint32, []byte, bool) {
	rest, ok := bytes.CutPrefix(line, []byte("* "))
	if !ok {
		return 0, nil, false
	}
	num, rest, ok := bytes.Cut(bytes.TrimRight(rest, "\r\n"), []byte(" "))
	if !ok || len(num) == 0 || len(num) > 10 {
		return 0, nil, false
	}
	var n uint64
	for _, ch := range num {
		if ch < '0' || ch > '9' {
			return 0, nil, false
		}
		n = n*10 + uint64(ch-'0')
	}
	if n > 1<<32-1 {
		return 0, nil, false
	}
	return uint32(n), rest, true
}

// benchDialer returns the dialer for client connection i. Towards a
// loopback IPv4 address it binds to a source address among 127.0.0.2 to
// 127.0.0.250, so that tens of thousands of connections do not exhaust the
// ephemeral ports of a single source address.
func benchDialer(i int, target string) *net.Dialer {
	d := &net.Dialer{Timeout: 30 * time.Second}
	host, _, err := net.SplitHostPort(target)
	if err != nil {
		return d
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() && ip.To4() != nil {
		d.LocalAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+i%249))}
	}
	return d
}
