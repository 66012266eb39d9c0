package wire

// Notify is NOTIFY (RFC 5465 §3.1): NOTIFY NONE (None), or NOTIFY SET
// with its STATUS indicator and event groups. Which combinations of
// filters and events make sense is the session's to check (§3.1, §5);
// the parser checks the grammar.
type Notify struct {
	None   bool
	Status bool
	Groups []NotifyGroup
}

// NotifyGroup is one event-group: a filter of mailboxes and the events
// wanted for them.
type NotifyGroup struct {
	// Filter is "selected", "selected-delayed", "inboxes", "personal",
	// "subscribed", "subtree" or "mailboxes" (lower case).
	Filter string
	// Mailboxes are the names of subtree and mailboxes, decoded.
	Mailboxes []string
	// Events are the events wanted; empty for NONE.
	Events []NotifyEvent
}

// NotifyEvent is one event of an event group. Name is the RFC's
// spelling for the events it defines (MessageNew, MessageExpunge,
// FlagChange, AnnotationChange, MailboxName, SubscriptionChange,
// MailboxMetadataChange, ServerMetadataChange), else the atom as sent
// (event-ext, which the session refuses with BADEVENT).
type NotifyEvent struct {
	Name string
	// Fetch holds MessageNew's fetch attributes (§5.2), nil without.
	Fetch []FetchAttr
}

// notifyEvents spells the events of RFC 5465 §5 and RFC 5464 §5.
var notifyEvents = map[string]string{
	"MESSAGENEW":            "MessageNew",
	"MESSAGEEXPUNGE":        "MessageExpunge",
	"FLAGCHANGE":            "FlagChange",
	"ANNOTATIONCHANGE":      "AnnotationChange",
	"MAILBOXNAME":           "MailboxName",
	"SUBSCRIPTIONCHANGE":    "SubscriptionChange",
	"MAILBOXMETADATACHANGE": "MailboxMetadataChange",
	"SERVERMETADATACHANGE":  "ServerMetadataChange",
}

// notifyArgs reads SP ("NONE" / "SET" [SP "STATUS"] SP event-groups)
// (RFC 5465 §8).
func (p *Parser) notifyArgs() (*Notify, error) {
	if err := p.sp(); err != nil {
		return nil, err
	}
	a, err := p.atom()
	if err != nil {
		return nil, err
	}
	n := &Notify{}
	switch toUpper(a) {
	case "NONE":
		n.None = true
		return n, nil
	case "SET":
	default:
		return nil, p.syntax("expected NOTIFY SET or NOTIFY NONE")
	}
	if err := p.sp(); err != nil {
		return nil, err
	}
	if b, err := p.peek(); err != nil {
		return nil, err
	} else if b != '(' {
		a, err := p.atom()
		if err != nil {
			return nil, err
		}
		if toUpper(a) != "STATUS" {
			return nil, p.syntax("expected STATUS or an event group")
		}
		n.Status = true
		if err := p.sp(); err != nil {
			return nil, err
		}
	}
	for {
		g, err := p.notifyGroup()
		if err != nil {
			return nil, err
		}
		n.Groups = append(n.Groups, g)
		if len(n.Groups) > p.lim.MaxList {
			return nil, p.fail(ErrTooComplex, "too many event groups")
		}
		if end, err := p.atEnd(); err != nil || end {
			return n, err
		}
		if err := p.sp(); err != nil {
			return nil, err
		}
	}
}

// notifyGroup reads "(" filter-mailboxes SP events ")".
func (p *Parser) notifyGroup() (NotifyGroup, error) {
	var g NotifyGroup
	if err := p.expect('(', `"("`); err != nil {
		return g, err
	}
	if err := p.enter(); err != nil {
		return g, err
	}
	defer p.leave()
	f, err := p.atom()
	if err != nil {
		return g, err
	}
	g.Filter = toLower(f)
	switch g.Filter {
	case "selected", "selected-delayed", "inboxes", "personal", "subscribed":
	case "subtree", "mailboxes":
		if err := p.sp(); err != nil {
			return g, err
		}
		if b, err := p.peek(); err != nil {
			return g, err
		} else if b == '(' {
			err = p.list(false, func() error {
				m, err := p.mailbox()
				g.Mailboxes = append(g.Mailboxes, m)
				return err
			})
			if err != nil {
				return g, err
			}
		} else {
			m, err := p.mailbox()
			if err != nil {
				return g, err
			}
			g.Mailboxes = []string{m}
		}
	default:
		return g, p.syntax("unknown NOTIFY filter " + f)
	}
	if err := p.sp(); err != nil {
		return g, err
	}
	if b, err := p.peek(); err != nil {
		return g, err
	} else if b != '(' {
		a, err := p.atom()
		if err != nil {
			return g, err
		}
		if toUpper(a) != "NONE" {
			return g, p.syntax(`expected NONE or "("`)
		}
	} else if err := p.list(false, func() error {
		ev, err := p.notifyEvent()
		g.Events = append(g.Events, ev)
		return err
	}); err != nil {
		return g, err
	}
	return g, p.expect(')', `")"`)
}

// notifyEvent reads one event: MessageNew may carry a list of
// fetch-att (RFC 5465 §8).
func (p *Parser) notifyEvent() (NotifyEvent, error) {
	a, err := p.atom()
	if err != nil {
		return NotifyEvent{}, err
	}
	ev := NotifyEvent{Name: a}
	if name, ok := notifyEvents[toUpper(a)]; ok {
		ev.Name = name
	}
	if ev.Name != "MessageNew" {
		return ev, nil
	}
	// " (" after MessageNew opens its fetch attributes; a space and
	// anything else is the next event.
	two, err := p.br.Peek(2)
	if err != nil || two[0] != ' ' || two[1] != '(' {
		return ev, nil
	}
	if err := p.sp(); err != nil {
		return ev, err
	}
	err = p.list(false, func() error {
		at, err := p.fetchAtt()
		ev.Fetch = append(ev.Fetch, at)
		return err
	})
	return ev, err
}
