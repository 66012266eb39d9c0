package jmap

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"time"

	"pushmail/mailstore"
)

// emailSet is Email/set (RFC 8621 §4.6): create (emailcreate.go), update
// (keywords, mailboxIds, whole or by "keywords/…" and "mailboxIds/…"
// patch paths) and destroy.
func (s *Server) emailSet(c *call) (any, error) {
	var create map[string]json.RawMessage
	var update map[string]map[string]json.RawMessage
	var destroy []string
	op, err := s.openSet(c, crudSpec(mailstore.KindEmail, &create, &update, &destroy))
	if err != nil {
		return nil, err
	}
	err = s.createEmails(op, slices.Sorted(maps.Keys(create)), func(k string) (newEmail, *setError) {
		ec, raw, se := buildMessage(create[k], time.Now())
		if se != nil {
			return newEmail{}, se
		}
		return newEmail{raw, ec.MailboxIDs, ec.Keywords, ec.ReceivedAt}, nil
	})
	if err != nil {
		return nil, err
	}
	for _, id := range slices.Sorted(maps.Keys(update)) {
		se, err := s.updateEmail(c, id, update[id])
		if err != nil {
			return nil, err
		}
		if se != nil {
			op.notUpdated[id] = se
		} else {
			op.updated[id] = nil
		}
	}
	// RFC 8621 §4.1.1: an email with \Deleted is not visible, so not
	// found, as for an update.
	visible, _, err := s.visibleEmails(c, destroy, parseEmail, emailID, mailstore.EmailOptions{})
	if err != nil {
		return nil, err
	}
	shown := map[mailstore.EmailID]bool{}
	for _, e := range visible {
		shown[e.ID] = true
	}
	for _, id := range destroy {
		n, ok := parseEmail(id)
		if !ok || !shown[n] {
			op.notDestroyed[id] = &setError{Type: "notFound"}
			continue
		}
		if err := s.store.DestroyEmail(c.ctx, c.user.ID, n, 0); err != nil {
			if se, ok := setErrorOf(err); ok {
				op.notDestroyed[id] = se
				continue
			}
			return nil, err
		}
		op.destroyed = append(op.destroyed, id)
	}
	return op.response(setFields...)
}

// newEmail is one Email/set creation or Email/import: the message, and
// the mailboxes, keywords and receivedAt it is stored with.
type newEmail struct {
	raw        []byte
	mailboxIDs map[string]bool
	keywords   map[string]bool
	receivedAt *string
}

// createEmails stores the emails that build makes of creations keys, in
// that order, recording each outcome in op. In a fixed order (the
// callers sort): creations are independent, but the answers and their
// errors should not change from run to run.
func (s *Server) createEmails(op *setOp, keys []string, build func(k string) (newEmail, *setError)) error {
	for _, k := range keys {
		ne, se := build(k)
		if se != nil {
			op.notCreated[k] = se
			continue
		}
		obj, se, err := s.storeNewEmail(op.c, ne.raw, ne.mailboxIDs, ne.keywords, ne.receivedAt)
		if err != nil {
			return err
		}
		if se != nil {
			op.notCreated[k] = se
			continue
		}
		op.create(k, obj, obj["id"].(string))
	}
	return nil
}

// updateEmail applies one PatchObject (RFC 8620 §5.3) to an email.
func (s *Server) updateEmail(c *call, id string, patch map[string]json.RawMessage) (*setError, error) {
	n, ok := parseEmail(id)
	if !ok {
		return &setError{Type: "notFound"}, nil
	}
	emails, err := s.store.Emails(c.ctx, c.user.ID, []mailstore.EmailID{n}, mailstore.EmailOptions{})
	if err != nil {
		return nil, err
	}
	if len(emails) == 0 || hidden(&emails[0]) {
		return &setError{Type: "notFound"}, nil
	}
	e := emails[0]
	keywords := keywordsOf(e.Flags)
	mailboxes := map[mailstore.MailboxID]bool{}
	for mb := range e.Mailboxes {
		mailboxes[mb] = true
	}
	var u mailstore.EmailUpdate
	bad := func(prop string) (*setError, error) {
		return &setError{Type: "invalidProperties", Properties: []string{prop}}, nil
	}
	for path, raw := range patch {
		switch {
		case path == "keywords":
			var kw map[string]bool
			if json.Unmarshal(raw, &kw) != nil {
				return bad(path)
			}
			keywords = map[string]bool{}
			for k, v := range kw {
				if !v || !validKeyword(k) {
					return bad(path)
				}
				keywords[strings.ToLower(k)] = true
			}
			u.SetFlags = true
		case strings.HasPrefix(path, "keywords/"):
			k := strings.ToLower(unescapePointer(path[len("keywords/"):]))
			if !validKeyword(k) {
				return bad(path)
			}
			var v *bool
			if json.Unmarshal(raw, &v) != nil || (v != nil && !*v) {
				return bad(path)
			}
			if v == nil {
				delete(keywords, k)
			} else {
				keywords[k] = true
			}
			u.SetFlags = true
		case path == "mailboxIds":
			var m map[string]bool
			if json.Unmarshal(raw, &m) != nil {
				return bad(path)
			}
			mailboxes = map[mailstore.MailboxID]bool{}
			for k, v := range m {
				mb, ok := c.resolveMailboxRef(k)
				if !v || !ok {
					return bad(path)
				}
				mailboxes[mb] = true
			}
			u.SetMailboxes = true
		case strings.HasPrefix(path, "mailboxIds/"):
			mb, ok := c.resolveMailboxRef(unescapePointer(path[len("mailboxIds/"):]))
			var v *bool
			if !ok || json.Unmarshal(raw, &v) != nil || (v != nil && !*v) {
				return bad(path)
			}
			if v == nil {
				delete(mailboxes, mb)
			} else {
				mailboxes[mb] = true
			}
			u.SetMailboxes = true
		default:
			// RFC 8621 §4.6: every other property is immutable.
			return bad(path)
		}
	}
	if u.SetMailboxes {
		if len(mailboxes) == 0 {
			// RFC 8621 §4.1.1: an Email is in at least one Mailbox.
			return &setError{Type: "invalidProperties", Properties: []string{"mailboxIds"}, Description: "An email must be in a mailbox"}, nil
		}
		for mb := range mailboxes {
			u.Mailboxes = append(u.Mailboxes, mb)
		}
		slices.Sort(u.Mailboxes)
	}
	if u.SetFlags {
		u.Flags = flagsOf(keywords)
	}
	if err := s.store.UpdateEmail(c.ctx, c.user.ID, n, u, 0); err != nil {
		if se, ok := setErrorOf(err); ok {
			if se.Type == "notFound" && u.SetMailboxes {
				return &setError{Type: "invalidProperties", Properties: []string{"mailboxIds"}, Description: "No such mailbox"}, nil
			}
			return se, nil
		}
		return nil, err
	}
	return nil, nil
}

func flagsOf(keywords map[string]bool) []string {
	flags := make([]string, 0, len(keywords))
	for k := range keywords {
		flags = append(flags, flagOf(k))
	}
	slices.Sort(flags)
	return flags
}

// unescapePointer undoes RFC 6901's escapes in one path component.
func unescapePointer(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~1", "/"), "~0", "~")
}

// emailImport is Email/import (RFC 8621 §4.8): each blob (an upload, or
// an existing email's) becomes a new Email in the given mailboxes.
func (s *Server) emailImport(c *call) (any, error) {
	type emailImport struct {
		BlobID     string          `json:"blobId"`
		MailboxIDs map[string]bool `json:"mailboxIds"`
		Keywords   map[string]bool `json:"keywords"`
		ReceivedAt *string         `json:"receivedAt"`
	}
	var emails map[string]emailImport
	op, err := s.openSet(c, setSpec{kind: mailstore.KindEmail, args: map[string]any{"emails": &emails},
		required: []string{"emails"}, objects: func() int { return len(emails) }, what: "emails"})
	if err != nil {
		return nil, err
	}
	err = s.createEmails(op, slices.Sorted(maps.Keys(emails)), func(k string) (newEmail, *setError) {
		im := emails[k]
		raw, ok := s.blob(c, im.BlobID)
		if !ok {
			return newEmail{}, &setError{Type: "blobNotFound"}
		}
		return newEmail{raw, im.MailboxIDs, im.Keywords, im.ReceivedAt}, nil
	})
	if err != nil {
		return nil, err
	}
	// RFC 8621 §4.8: the answer has no updated or destroyed.
	return op.response("created", "notCreated")
}
