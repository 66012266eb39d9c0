package jmap

import (
	"encoding/json"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"pushmail/mailstore"
)

// emailSet is Email/set (RFC 8621 §4.6): create (emailcreate.go), update
// (keywords, mailboxIds, whole or by "keywords/…" and "mailboxIds/…"
// patch paths) and destroy.
func (s *Server) emailSet(c *call) (any, error) {
	if err := c.known("accountId", "ifInState", "create", "update", "destroy"); err != nil {
		return nil, err
	}
	var create map[string]json.RawMessage
	var update map[string]map[string]json.RawMessage
	var destroy []string
	for name, v := range map[string]any{"create": &create, "update": &update, "destroy": &destroy} {
		if err := c.arg(name, v); err != nil {
			return nil, err
		}
	}
	if len(create)+len(update)+len(destroy) > s.limits.MaxObjectsInSet {
		return nil, &methodError{Type: "requestTooLarge", Description: "More objects than maxObjectsInSet"}
	}
	old, err := s.store.AccountState(c.ctx, c.user.ID)
	if err != nil {
		return nil, err
	}
	if err := ifInState(c, old.Email); err != nil {
		return nil, err
	}
	created := map[string]any{}
	notCreated := map[string]any{}
	// In a fixed order: creations are independent, but the answers
	// and their errors should not change from run to run.
	keys := slices.Sorted(maps.Keys(create))
	for _, k := range keys {
		ec, raw, se := buildMessage(create[k], time.Now())
		if se != nil {
			notCreated[k] = se
			continue
		}
		obj, se, err := s.storeNewEmail(c, raw, ec.MailboxIDs, ec.Keywords, ec.ReceivedAt)
		if err != nil {
			return nil, err
		}
		if se != nil {
			notCreated[k] = se
			continue
		}
		created[k] = obj
		c.req.created[k] = obj["id"].(string)
	}
	updated := map[string]any{}
	notUpdated := map[string]any{}
	ids := make([]string, 0, len(update))
	for id := range update {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		se, err := s.updateEmail(c, id, update[id])
		if err != nil {
			return nil, err
		}
		if se != nil {
			notUpdated[id] = se
		} else {
			updated[id] = nil
		}
	}
	destroyed := []string{}
	notDestroyed := map[string]any{}
	for _, id := range destroy {
		n, ok := parseEmail(id)
		if !ok {
			notDestroyed[id] = &setError{Type: "notFound"}
			continue
		}
		if err := s.store.DestroyEmail(c.ctx, c.user.ID, n, 0); err != nil {
			if se, ok := setErrorOf(err); ok {
				notDestroyed[id] = se
				continue
			}
			return nil, err
		}
		destroyed = append(destroyed, id)
	}
	now, err := s.store.AccountState(c.ctx, c.user.ID)
	if err != nil {
		return nil, err
	}
	return setResponse(c, old.Email, now.Email, created, notCreated, updated, notUpdated, destroyed, notDestroyed), nil
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
	if err := c.known("accountId", "ifInState", "emails"); err != nil {
		return nil, err
	}
	type emailImport struct {
		BlobID     string          `json:"blobId"`
		MailboxIDs map[string]bool `json:"mailboxIds"`
		Keywords   map[string]bool `json:"keywords"`
		ReceivedAt *string         `json:"receivedAt"`
	}
	var emails map[string]emailImport
	if err := c.arg("emails", &emails); err != nil {
		return nil, err
	}
	if emails == nil {
		return nil, invalidArgs("emails is required", "emails")
	}
	if len(emails) > s.limits.MaxObjectsInSet {
		return nil, &methodError{Type: "requestTooLarge", Description: "More emails than maxObjectsInSet"}
	}
	old, err := s.store.AccountState(c.ctx, c.user.ID)
	if err != nil {
		return nil, err
	}
	if err := ifInState(c, old.Email); err != nil {
		return nil, err
	}
	created := map[string]any{}
	notCreated := map[string]any{}
	// In a fixed order: creations are independent, but the answers
	// and their errors should not change from run to run.
	keys := slices.Sorted(maps.Keys(emails))
	for _, k := range keys {
		im := emails[k]
		raw, ok := s.blob(c, im.BlobID)
		if !ok {
			notCreated[k] = &setError{Type: "blobNotFound"}
			continue
		}
		obj, se, err := s.storeNewEmail(c, raw, im.MailboxIDs, im.Keywords, im.ReceivedAt)
		if err != nil {
			return nil, err
		}
		if se != nil {
			notCreated[k] = se
			continue
		}
		created[k] = obj
		c.req.created[k] = obj["id"].(string)
	}
	now, err := s.store.AccountState(c.ctx, c.user.ID)
	if err != nil {
		return nil, err
	}
	out := map[string]any{"accountId": accountID(c.user.ID), "oldState": stateString(old.Email), "newState": stateString(now.Email),
		"created": nil, "notCreated": nil}
	if len(created) > 0 {
		out["created"] = created
	}
	if len(notCreated) > 0 {
		out["notCreated"] = notCreated
	}
	return out, nil
}
