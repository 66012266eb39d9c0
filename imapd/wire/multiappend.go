package wire

import "time"

// AppendMessage is one message of an APPEND: its flags, date and data.
type AppendMessage struct {
	Flags   []string  // nil without a flag list
	Date    time.Time // zero without a date-time
	Message []byte
	Binary  bool // sent as literal8
	UTF8    bool // sent as "UTF8 (…)"
}

// Messages returns every message of a, the first one included, in the
// order the client sent them.
func (a *Append) Messages() []AppendMessage {
	first := AppendMessage{Flags: a.Flags, Date: a.Date, Message: a.Message, Binary: a.Binary, UTF8: a.UTF8}
	return append([]AppendMessage{first}, a.More...)
}

// appendMessages reads 1*(SP append-message) into a: the first message
// into a's own fields, the others into a.More (RFC 3502 §6:
// append = "APPEND" SP mailbox 1*append-message). Each message literal
// goes through OnLiteral and Grow as the first does, and Grow's total
// counts every message of the command read so far, so the in-flight
// budget holds all of them. Limits.MaxArgs bounds how many messages one
// command may carry (each takes at least one item), and
// Limits.MaxMessage each one.
func (p *Parser) appendMessages(a *Append) error {
	for i := 0; ; i++ {
		if i > 0 {
			if end, err := p.atEnd(); err != nil || end {
				return err
			}
		}
		if err := p.sp(); err != nil {
			return err
		}
		var m AppendMessage
		if err := p.appendMessage(&m); err != nil {
			return err
		}
		if i == 0 {
			a.Flags, a.Date, a.Message, a.Binary, a.UTF8 = m.Flags, m.Date, m.Message, m.Binary, m.UTF8
		} else {
			a.More = append(a.More, m)
		}
	}
}

// appendMessage reads [flag-list SP] [date-time SP] append-data, where
// append-data is a literal, a literal8 (RFC 3516 §4.4) or "UTF8" SP "("
// literal8 ")" (RFC 6855 §4; a plain literal is taken there too).
func (p *Parser) appendMessage(m *AppendMessage) error {
	b, err := p.peek()
	if err != nil {
		return err
	}
	if b == '(' {
		if m.Flags, err = p.flagList(); err != nil {
			return err
		}
		if err := p.sp(); err != nil {
			return err
		}
		if b, err = p.peek(); err != nil {
			return err
		}
	}
	if b == '"' {
		if m.Date, err = p.dateTime(); err != nil {
			return err
		}
		if err := p.sp(); err != nil {
			return err
		}
		if b, err = p.peek(); err != nil {
			return err
		}
	}
	if b == 'U' || b == 'u' {
		w, err := p.atom()
		if err != nil {
			return err
		}
		if toUpper(w) != "UTF8" {
			return p.syntax("expected a literal or UTF8")
		}
		if err := p.sp(); err != nil {
			return err
		}
		if err := p.expect('(', `"("`); err != nil {
			return err
		}
		m.UTF8 = true
		if m.Message, m.Binary, err = p.literal(litBinary); err != nil {
			return err
		}
		return p.expect(')', `")"`)
	}
	if b != '{' && b != '~' {
		return p.syntax("expected the message as a literal")
	}
	if err := p.arg(); err != nil {
		return err
	}
	m.Message, m.Binary, err = p.literal(litMessage)
	return err
}
