package pop3d

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"

	"pushmail/mailstore"
)

// maildrop is a session's snapshot of INBOX, taken at login: message
// number n is msgs[n-1] for the whole session (RFC 1939 §5: "message
// numbers ... do not change during the session"). Only the session's
// goroutine uses it.
type maildrop struct {
	mb        mailstore.Mailbox
	msgs      []mailstore.MaildropEntry
	deleted   []bool // marked by DELE
	retrieved []bool // sent by RETR: \Seen at QUIT
	ndeleted  int
	total     int64 // sizes of all messages
	delSize   int64 // sizes of the marked messages
}

// openMaildrop takes the snapshot of u's INBOX.
func (s *session) openMaildrop(u mailstore.User) (*maildrop, error) {
	mb, err := s.srv.store.Mailbox(s.ctx, u.ID, "INBOX")
	if err != nil {
		return nil, err
	}
	msgs, err := s.srv.store.Maildrop(s.ctx, mb.ID)
	if err != nil {
		return nil, err
	}
	d := &maildrop{mb: mb, msgs: msgs, deleted: make([]bool, len(msgs)), retrieved: make([]bool, len(msgs))}
	for _, m := range msgs {
		d.total += m.Size
	}
	return d, nil
}

// count is the number of messages not marked deleted.
func (d *maildrop) count() int { return len(d.msgs) - d.ndeleted }

// size is the total size of the messages not marked deleted.
func (d *maildrop) size() int64 { return d.total - d.delSize }

// uidl is a message's unique-id listing (RFC 1939 §7: 1 to 70
// characters in 0x21..0x7E): UID and UIDVALIDITY as Dovecot's default
// %08Xu%08Xv, stable for as long as the message is.
func (d *maildrop) uidl(i int) string {
	return fmt.Sprintf("%08X%08X", uint32(d.msgs[i].UID), d.mb.UIDValidity)
}

// msgIndex parses a message-number argument into an index of d.msgs. A
// message marked deleted is errDeleted (RFC 1939 §5: a message-number
// "may NOT refer to a message marked as deleted").
func (d *maildrop) msgIndex(arg string) (int, error) {
	n, ok := parseNumber(arg)
	if !ok {
		return 0, errSyntax
	}
	if n < 1 || n > len(d.msgs) {
		return 0, errNoSuchMessage
	}
	if d.deleted[n-1] {
		return 0, errDeleted
	}
	return n - 1, nil
}

// parseNumber parses a decimal argument of at most 9 digits.
func parseNumber(s string) (int, bool) {
	if s == "" || len(s) > 9 {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.Atoi(s)
	return n, err == nil
}

// stat is STAT (RFC 1939 §5): messages not marked deleted and their size.
func (s *session) stat(arg string) error {
	if arg != "" {
		return errSyntax
	}
	s.okf("%d %d", s.drop.count(), s.drop.size())
	return nil
}

// list is LIST (RFC 1939 §5): one message's size, or every message's
// not marked deleted.
func (s *session) list(arg string) error {
	d := s.drop
	if arg != "" {
		i, err := d.msgIndex(arg)
		if err != nil {
			return err
		}
		s.okf("%d %d", i+1, d.msgs[i].Size)
		return nil
	}
	s.okf("%d messages (%d octets)", d.count(), d.size())
	for i, m := range d.msgs {
		if !d.deleted[i] {
			s.line(fmt.Sprintf("%d %d", i+1, m.Size))
		}
	}
	s.end()
	return nil
}

// uidl is UIDL (RFC 1939 §7): one message's unique id, or every
// message's not marked deleted.
func (s *session) uidl(arg string) error {
	d := s.drop
	if arg != "" {
		i, err := d.msgIndex(arg)
		if err != nil {
			return err
		}
		s.okf("%d %s", i+1, d.uidl(i))
		return nil
	}
	s.ok("Unique-ID listing follows")
	for i := range d.msgs {
		if !d.deleted[i] {
			s.line(fmt.Sprintf("%d %s", i+1, d.uidl(i)))
		}
	}
	s.end()
	return nil
}

// retr is RETR (RFC 1939 §5): the whole message, byte-stuffed, with CRLF
// line ends. The message gets \Seen at QUIT (see doc.go).
func (s *session) retr(arg string) error {
	i, err := s.drop.msgIndex(arg)
	if err != nil {
		return err
	}
	if err := s.sendMessage(i, -1); err != nil {
		return err
	}
	s.drop.retrieved[i] = true
	s.retrieved++
	s.srv.opts.Metrics.messageRetrieved(s.drop.msgs[i].Size)
	return nil
}

// top is TOP (RFC 1939 §7): the header, the blank line after it, and the
// first n lines of the body. It sets no flag.
func (s *session) top(arg string) error {
	num, lines, ok := strings.Cut(arg, " ")
	if !ok {
		return errSyntax
	}
	i, err := s.drop.msgIndex(num)
	if err != nil {
		return err
	}
	n, ok := parseNumber(lines)
	if !ok {
		return errSyntax
	}
	return s.sendMessage(i, n)
}

// sendMessage writes message i as a multi-line response: all of it, or
// with bodyLines >= 0 its header and that many body lines. It reads the
// body from the store (the snapshot holds no bodies) while writing.
func (s *session) sendMessage(i, bodyLines int) error {
	d := s.drop
	found := false
	var werr error // the client's (a write), not the store's
	err := s.srv.store.Messages(s.ctx, d.mb.ID, mailstore.UIDSetOf(d.msgs[i].UID), mailstore.FetchOptions{Body: true}, func(m *mailstore.Message) error {
		found = true
		if bodyLines < 0 {
			s.okf("%d octets", d.msgs[i].Size)
		} else {
			s.ok("Top of message follows")
		}
		werr = writeMessage(s.bw, m.Raw, bodyLines)
		return werr
	})
	if werr != nil {
		// The client is gone or stopped reading; the flush in execute
		// fails the same way and ends the session.
		return nil
	}
	if err != nil {
		return err
	}
	if !found {
		return errMessageGone
	}
	return nil
}

// writeMessage writes raw as the body of a multi-line response (RFC 1939
// §3): each line ended by CRLF, whether it was stored with CRLF or a bare
// LF, a line starting with "." byte-stuffed, then the terminating
// ".". With bodyLines >= 0 it stops after the header, the blank line that
// ends it, and that many lines of the body (TOP).
func writeMessage(w *bufio.Writer, raw []byte, bodyLines int) error {
	// bufio.Writer's error is sticky: the last write reports any.
	inBody, sent := false, 0
	for len(raw) > 0 {
		var line []byte
		if i := bytes.IndexByte(raw, '\n'); i >= 0 {
			line, raw = raw[:i], raw[i+1:]
		} else {
			// A last line without a line end gets one: the terminating
			// "." must start a line.
			line, raw = raw, nil
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		if inBody {
			if bodyLines >= 0 && sent >= bodyLines {
				break
			}
			sent++
		}
		if len(line) > 0 && line[0] == '.' {
			w.WriteByte('.')
		}
		w.Write(line)
		w.WriteString("\r\n")
		if !inBody && len(line) == 0 {
			inBody = true // the blank line after the header (RFC 5322 §2.1)
		}
	}
	_, err := w.WriteString(".\r\n")
	return err
}

// dele is DELE (RFC 1939 §5): it marks the message; only QUIT removes it.
func (s *session) dele(arg string) error {
	d := s.drop
	i, err := d.msgIndex(arg)
	if err != nil {
		return err
	}
	d.deleted[i] = true
	d.ndeleted++
	d.delSize += d.msgs[i].Size
	s.okf("Message %d deleted", i+1)
	return nil
}

// rset is RSET (RFC 1939 §5): every deletion mark is removed. A message
// retrieved still gets \Seen at QUIT: RSET unmarks deletions only, and
// the client has read it.
func (s *session) rset(arg string) error {
	if arg != "" {
		return errSyntax
	}
	d := s.drop
	clear(d.deleted)
	d.ndeleted, d.delSize = 0, 0
	s.okf("Maildrop has %d messages (%d octets)", d.count(), d.size())
	return nil
}

// quit is QUIT (RFC 1939 §5, §6). In the AUTHORIZATION state it only
// says goodbye. In the TRANSACTION state it enters the UPDATE state: the
// marked messages are removed and the retrieved ones that stay get \Seen,
// in one durable store write that notifies IMAP sessions; then the
// connection closes, whatever the outcome.
func (s *session) quit(arg string) error {
	s.quitting = true
	if s.state != stateTransaction {
		s.ok("pushmail POP3 server signing off")
		return nil
	}
	d := s.drop
	var remove, seen []mailstore.UID
	for i, m := range d.msgs {
		switch {
		case d.deleted[i]:
			remove = append(remove, m.UID)
		case d.retrieved[i]:
			seen = append(seen, m.UID)
		}
	}
	// The update runs to the end even if Shutdown cancels the session
	// meanwhile: the client asked for it, and the store closes only
	// after the servers have stopped.
	removed, err := s.srv.store.UpdateMaildrop(context.WithoutCancel(s.ctx), d.mb.ID, seen, remove, 0)
	if err != nil {
		// RFC 1939 §6: -ERR if some deleted messages were not removed;
		// here none were (one write: all or nothing).
		s.log.Info("QUIT: maildrop not updated", "err", err)
		return s.reply(err)
	}
	s.removed = len(removed)
	s.srv.opts.Metrics.messagesRemoved(len(removed))
	s.log.Debug("maildrop updated", "removed", len(removed), "seen", len(seen))
	s.ok("pushmail POP3 server signing off")
	return nil
}
