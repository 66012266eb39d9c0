package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/emersion/go-smtp"
)

// rawSMTP is a minimal SMTP client that sends as MTAs such as Postfix do
// when the server offers ESMTP PIPELINING (RFC 2920): MAIL FROM, RCPT TO
// and DATA in one write, then the dot-stuffed message and its final "."
// in a second one. go-smtp's client sends each command on its own and
// waits for its reply, and dot-stuffs byte by byte; the ingest bench
// shares the server's cores with its senders, so the sender's own cost
// counts against the figure measured.
//
// Every reply code is checked; any refusal comes back as an
// *smtp.SMTPError, so callers tell it from a broken connection as they do
// with go-smtp's client.
//
// It is test-quality code, written to load pushmail's own server: no
// TLS, no AUTH, no extension beyond PIPELINING, no recovery from a reply
// it does not expect. Do not use it to send mail anywhere else.
type rawSMTP struct {
	conn net.Conn
	r    *bufio.Reader
	out  []byte // the next write, reused
	size bool   // the server offers SIZE (RFC 1870)
	// lastText is the text of the last refusal read (4xx, 5xx).
	lastText string
	// timeout bounds each transaction (deadline on the connection).
	timeout time.Duration
}

// dialRawSMTP connects, reads the greeting, says EHLO and checks that the
// server offers PIPELINING: without it, commands must not be grouped
// (RFC 2920 §3.1).
func dialRawSMTP(ctx context.Context, addr string, timeout time.Duration) (*rawSMTP, error) {
	nc, err := (&net.Dialer{Timeout: 30 * time.Second}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	c := &rawSMTP{conn: nc, r: bufio.NewReaderSize(nc, 4096), timeout: timeout}
	if err := c.hello(); err != nil {
		nc.Close()
		return nil, err
	}
	return c, nil
}

func (c *rawSMTP) hello() error {
	if err := c.conn.SetDeadline(time.Now().Add(c.timeout)); err != nil {
		return err
	}
	if _, err := c.expect(220); err != nil {
		return fmt.Errorf("greeting: %w", err)
	}
	if _, err := c.conn.Write([]byte("EHLO bench.localhost\r\n")); err != nil {
		return err
	}
	// RFC 5321 §4.1.1.1: the EHLO reply lists one extension per line
	// after the first.
	lines, err := c.expect(250)
	if err != nil {
		return fmt.Errorf("EHLO: %w", err)
	}
	pipelining := false
	for _, l := range lines[1:] {
		kw, _, _ := bytes.Cut(l, []byte(" "))
		switch {
		case bytes.EqualFold(kw, []byte("PIPELINING")):
			pipelining = true
		case bytes.EqualFold(kw, []byte("SIZE")):
			c.size = true
		}
	}
	if !pipelining {
		return errors.New("the server does not offer PIPELINING (RFC 2920): use --client gosmtp")
	}
	return nil
}

// transaction runs one transaction: nil after the 250 that follows the data, an
// *smtp.SMTPError if the server refused a command, another error if the
// connection failed. msg has CRLF line endings.
func (c *rawSMTP) transaction(from, rcpt string, msg []byte) error {
	if err := c.conn.SetDeadline(time.Now().Add(c.timeout)); err != nil {
		return err
	}
	// RFC 2920 §3.1: MAIL, RCPT and DATA may be sent as one group, DATA
	// last.
	c.out = append(c.out[:0], "MAIL FROM:<"...)
	c.out = append(c.out, from...)
	c.out = append(c.out, '>')
	if c.size {
		// RFC 1870 §6: the size the message will have, as Postfix sends it.
		c.out = append(c.out, " SIZE="...)
		c.out = strconv.AppendInt(c.out, int64(len(msg)), 10)
	}
	c.out = append(c.out, "\r\nRCPT TO:<"...)
	c.out = append(c.out, rcpt...)
	c.out = append(c.out, ">\r\nDATA\r\n"...)
	if _, err := c.conn.Write(c.out); err != nil {
		return err
	}
	// RFC 2920 §3.1: the client reads the replies in order; one for each
	// command of the group.
	var refused error
	for _, want := range []int{250, 250, 354} {
		code, text, err := c.reply()
		if err != nil {
			return err
		}
		if code != want && refused == nil {
			refused = &smtp.SMTPError{Code: code, Message: text}
		}
		if want == 354 && code == 354 && refused != nil {
			// RFC 2920 §3.1: DATA accepted although an earlier command
			// failed: send an empty message so that the server has
			// nothing to deliver and answers it.
			if _, err := c.conn.Write([]byte(".\r\n")); err != nil {
				return err
			}
			if _, _, err := c.reply(); err != nil {
				return err
			}
		}
	}
	if refused != nil {
		return refused
	}
	c.out = appendDotStuffed(c.out[:0], msg)
	if _, err := c.conn.Write(c.out); err != nil {
		return err
	}
	code, text, err := c.reply()
	if err != nil {
		return err
	}
	if code != 250 {
		return &smtp.SMTPError{Code: code, Message: text}
	}
	return nil
}

// reset sends RSET (RFC 5321 §4.1.1.5) and expects 250.
func (c *rawSMTP) reset() error {
	if err := c.conn.SetDeadline(time.Now().Add(c.timeout)); err != nil {
		return err
	}
	if _, err := c.conn.Write([]byte("RSET\r\n")); err != nil {
		return err
	}
	_, err := c.expect(250)
	return err
}

// close says QUIT, without waiting long for the reply, and closes.
func (c *rawSMTP) close() error {
	if err := c.conn.SetDeadline(time.Now().Add(time.Second)); err == nil {
		if _, err := c.conn.Write([]byte("QUIT\r\n")); err == nil {
			c.reply() // 221, or nothing: the connection closes either way
		}
	}
	return c.conn.Close()
}

// reply reads one reply, multi-line or not (RFC 5321 §4.2.1), and
// returns its code and the text of its last line.
func (c *rawSMTP) reply() (int, string, error) {
	code, err := c.readReply(nil)
	if err != nil {
		return 0, "", err
	}
	return code, c.lastText, nil
}

// expect reads one reply and fails unless it has code want; it returns
// the text of each line.
func (c *rawSMTP) expect(want int) ([][]byte, error) {
	var lines [][]byte
	code, err := c.readReply(&lines)
	if err != nil {
		return nil, err
	}
	if code != want {
		return nil, &smtp.SMTPError{Code: code, Message: c.lastText}
	}
	return lines, nil
}

// readReply reads the lines of one reply and returns its code. The text
// of its last line goes to c.lastText when it is not a 2xx or 3xx reply
// (the only text a caller looks at); with lines, every line's text is
// appended to it.
func (c *rawSMTP) readReply(lines *[][]byte) (int, error) {
	code := 0
	c.lastText = ""
	for {
		line, err := c.r.ReadSlice('\n')
		if err != nil {
			return 0, fmt.Errorf("read reply: %w", err)
		}
		line = bytes.TrimRight(line, "\r\n")
		n := 0
		if len(line) >= 3 {
			n, err = strconv.Atoi(string(line[:3]))
		}
		if len(line) < 3 || err != nil || n < 200 || n > 599 || code != 0 && n != code {
			return 0, fmt.Errorf("malformed reply line %q", line)
		}
		code = n
		var text []byte
		if len(line) > 4 {
			text = line[4:]
		}
		if lines != nil {
			*lines = append(*lines, bytes.Clone(text)) // ReadSlice reuses its bytes
		}
		if len(line) == 3 || line[3] == ' ' {
			if code >= 400 {
				c.lastText = string(text)
			}
			return code, nil
		}
		if line[3] != '-' {
			return 0, fmt.Errorf("malformed reply line %q", line)
		}
	}
}

// appendDotStuffed appends msg as DATA carries it (RFC 5321 §4.5.2): a
// line that starts with "." gets another, and the data ends with
// CRLF "." CRLF, a CRLF being added if msg lacks its own.
func appendDotStuffed(dst, msg []byte) []byte {
	needCRLF := len(msg) > 0 && !bytes.HasSuffix(msg, []byte("\r\n"))
	if len(msg) > 0 && msg[0] == '.' {
		dst = append(dst, '.')
	}
	for {
		i := bytes.Index(msg, []byte("\n."))
		if i < 0 {
			break
		}
		dst = append(dst, msg[:i+1]...)
		dst = append(dst, '.')
		msg = msg[i+1:]
	}
	dst = append(dst, msg...)
	if needCRLF {
		dst = append(dst, "\r\n"...)
	}
	return append(dst, ".\r\n"...)
}
