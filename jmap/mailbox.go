package jmap

import (
	"errors"
	"maps"
	"slices"
	"strings"

	"pushmail/mailstore"
)

// RFC 8621 §2: a Mailbox's role is an IANA "IMAP Mailbox Name
// Attributes" value in lower case; pushmail's are RFC 6154's special-use
// attributes, and "inbox" for INBOX.
func roleOf(mb mailstore.Mailbox) any {
	if mb.Name == "INBOX" {
		return "inbox"
	}
	if mb.SpecialUse == "" {
		return nil
	}
	return strings.ToLower(strings.TrimPrefix(mb.SpecialUse, `\`))
}

// specialUseOf is roleOf's inverse for Mailbox/set; ok false for a role
// the store cannot keep.
func specialUseOf(role string) (string, bool) {
	switch role {
	case "all", "archive", "drafts", "flagged", "junk", "sent", "trash":
		return `\` + strings.ToUpper(role[:1]) + role[1:], true
	}
	return "", false
}

// mailboxProperties are all of a Mailbox's (RFC 8621 §2).
var mailboxProperties = []string{"id", "name", "parentId", "role", "sortOrder", "totalEmails", "unreadEmails",
	"totalThreads", "unreadThreads", "myRights", "isSubscribed"}

// mailboxObject renders one mailbox. byName finds parents.
func mailboxObject(st mailstore.MailboxStatus, byName map[string]mailstore.MailboxID) map[string]any {
	parent, name := splitName(st.Name)
	var parentID any
	if parent != "" {
		if id, ok := byName[parent]; ok {
			parentID = mailboxID(id)
		}
	}
	// Every Email is its own Thread, so thread counts are email counts.
	// The counts leave out messages with \Deleted (mailboxes). RFC 8621
	// §2 also leaves $draft out of unreadEmails; pushmail counts an
	// unseen draft as unread.
	return map[string]any{
		"id":            mailboxID(st.ID),
		"name":          name,
		"parentId":      parentID,
		"role":          roleOf(st.Mailbox),
		"sortOrder":     0,
		"totalEmails":   st.Messages,
		"unreadEmails":  st.Unseen,
		"totalThreads":  st.Messages,
		"unreadThreads": st.Unseen,
		// RFC 8621 §2.4: the owner may do everything; INBOX may not be
		// renamed or deleted (RFC 9051 §6.3.5, §6.3.6 moves its mail).
		"myRights": map[string]bool{
			"mayReadItems": true, "mayAddItems": true, "mayRemoveItems": true, "maySetSeen": true,
			"maySetKeywords": true, "mayCreateChild": true, "mayRename": st.Name != "INBOX",
			"mayDelete": st.Name != "INBOX", "maySubmit": false,
		},
		"isSubscribed": st.Subscribed,
	}
}

// mailboxes reads the user's mailboxes with their counts as JMAP sees
// them: without the messages that have \Deleted (RFC 8621 §4.1.1).
func (s *Server) mailboxes(c *call) ([]mailstore.MailboxStatus, map[string]mailstore.MailboxID, error) {
	list, err := s.store.MailboxStatuses(c.ctx, c.user.ID)
	if err != nil {
		return nil, nil, err
	}
	hidden, err := s.store.HiddenCounts(c.ctx, c.user.ID)
	if err != nil {
		return nil, nil, err
	}
	for i := range list {
		h := hidden[list[i].ID]
		list[i].Messages -= min(h[0], list[i].Messages)
		list[i].Unseen -= min(h[1], list[i].Unseen)
	}
	byName := make(map[string]mailstore.MailboxID, len(list))
	for _, st := range list {
		byName[st.Name] = st.ID
	}
	return list, byName, nil
}

// getSpec is what a /get method tells getArgs about its arguments.
type getSpec struct {
	// all are the properties a client may ask for; defaults those it
	// gets when it names none (nil: all).
	all, defaults []string
	// headers allows header:… properties too (RFC 8621 §4.1.3).
	headers bool
	// needIDs, when not "", refuses ids null as requestTooLarge with
	// this description: RFC 8620 §5.1 lets a server refuse it when the
	// set is large.
	needIDs string
	// extra are the method's own arguments.
	extra []string
}

// getArgs reads /get's ids and properties (RFC 8620 §5.1), with
// maxObjectsInGet enforced. ids nil means all.
func (s *Server) getArgs(c *call, spec getSpec) (ids []string, props []string, err error) {
	if err := c.known(append([]string{"accountId", "ids", "properties"}, spec.extra...)...); err != nil {
		return nil, nil, err
	}
	if err := c.arg("ids", &ids); err != nil {
		return nil, nil, err
	}
	if spec.needIDs != "" && !c.has("ids") {
		return nil, nil, &methodError{Type: "requestTooLarge", Description: spec.needIDs}
	}
	if c.has("ids") && ids == nil {
		ids = []string{}
	}
	if len(ids) > s.limits.MaxObjectsInGet {
		return nil, nil, &methodError{Type: "requestTooLarge", Description: "More ids than maxObjectsInGet"}
	}
	props = spec.defaults
	if props == nil {
		props = spec.all
	}
	if c.has("properties") {
		props = nil // not into a default's array, which is shared
		if err := c.arg("properties", &props); err != nil {
			return nil, nil, err
		}
		for _, p := range props {
			if slices.Contains(spec.all, p) {
				continue
			}
			if _, ok := parseHeaderProperty(p); !ok || !spec.headers {
				return nil, nil, invalidArgs("Unknown property "+p, "properties")
			}
		}
		if !slices.Contains(props, "id") {
			props = append(props, "id") // RFC 8620 §5.1: id is always returned
		}
	}
	return ids, props, nil
}

func pick(obj map[string]any, props []string) map[string]any {
	out := make(map[string]any, len(props))
	for _, p := range props {
		out[p] = obj[p]
	}
	return out
}

// mailboxGet is Mailbox/get (RFC 8621 §2.1).
func (s *Server) mailboxGet(c *call) (any, error) {
	ids, props, err := s.getArgs(c, getSpec{all: mailboxProperties})
	if err != nil {
		return nil, err
	}
	state, err := s.store.AccountState(c.ctx, c.user.ID)
	if err != nil {
		return nil, err
	}
	list, byName, err := s.mailboxes(c)
	if err != nil {
		return nil, err
	}
	out := []any{}
	notFound := []string{}
	if ids == nil {
		for _, st := range list {
			out = append(out, pick(mailboxObject(st, byName), props))
		}
	} else {
		for _, id := range ids {
			n, ok := parseMailbox(id)
			i := slices.IndexFunc(list, func(st mailstore.MailboxStatus) bool { return st.ID == n })
			if !ok || i < 0 {
				notFound = append(notFound, id)
				continue
			}
			out = append(out, pick(mailboxObject(list[i], byName), props))
		}
	}
	return map[string]any{"accountId": accountID(c.user.ID), "state": stateString(state.Mailbox), "list": out, "notFound": notFound}, nil
}

// changesArgs reads /changes' sinceState and maxChanges (RFC 8620 §5.2).
func changesArgs(c *call) (since uint64, max int, err error) {
	if err := c.known("accountId", "sinceState", "maxChanges"); err != nil {
		return 0, 0, err
	}
	var state string
	if err := c.arg("sinceState", &state); err != nil {
		return 0, 0, err
	}
	since, ok := parseState(state)
	if !ok {
		// RFC 8620 §5.2: a state the server does not recognise.
		return 0, 0, &methodError{Type: "cannotCalculateChanges", Description: "Unknown state"}
	}
	max = 1000
	if c.has("maxChanges") {
		if err := c.arg("maxChanges", &max); err != nil {
			return 0, 0, err
		}
		if max <= 0 {
			return 0, 0, invalidArgs("maxChanges must be positive", "maxChanges")
		}
	}
	return since, min(max, 1000), nil
}

// mailboxChanges is Mailbox/changes (RFC 8621 §2.2).
func (s *Server) mailboxChanges(c *call) (any, error) {
	out, ch, err := changes(s, c, mailstore.KindMailbox, mailboxID)
	if err != nil {
		return nil, err
	}
	// RFC 8621 §2.2: updatedProperties lists the counts when only they
	// changed, and is null otherwise.
	var updatedProps any
	if ch.CountsOnly && len(ch.Updated) > 0 {
		updatedProps = []string{"totalEmails", "unreadEmails", "totalThreads", "unreadThreads"}
	}
	out["updatedProperties"] = updatedProps
	return out, nil
}

// mailboxQuery is Mailbox/query (RFC 8621 §2.3): filters parentId,
// name, role, hasAnyRole, isSubscribed; sort by name or sortOrder
// (equal for all).
func (s *Server) mailboxQuery(c *call) (any, error) {
	if err := c.known("accountId", "filter", "sort", "position", "anchor", "anchorOffset", "limit", "calculateTotal", "sortAsTree", "filterAsTree"); err != nil {
		return nil, err
	}
	var filter struct {
		ParentID     *string `json:"parentId"`
		HasParent    bool
		Name         *string `json:"name"`
		Role         *string `json:"role"`
		HasAnyRole   *bool   `json:"hasAnyRole"`
		IsSubscribed *bool   `json:"isSubscribed"`
	}
	if raw, ok := c.args["filter"]; ok && string(raw) != "null" {
		var m map[string]any
		if err := c.arg("filter", &m); err != nil {
			return nil, err
		}
		for k := range m {
			switch k {
			case "parentId", "name", "role", "hasAnyRole", "isSubscribed":
			default:
				return nil, &methodError{Type: "unsupportedFilter", Description: "Unknown filter " + k}
			}
		}
		_, filter.HasParent = m["parentId"]
		if err := c.arg("filter", &filter); err != nil {
			return nil, err
		}
	}
	sorts, err := sortArg(c, []string{"name", "sortOrder"}, nil)
	if err != nil {
		return nil, err
	}
	state, err := s.store.AccountState(c.ctx, c.user.ID)
	if err != nil {
		return nil, err
	}
	list, byName, err := s.mailboxes(c)
	if err != nil {
		return nil, err
	}
	var ids []string
	type entry struct{ id, name string }
	var entries []entry
	for _, st := range list {
		obj := mailboxObject(st, byName)
		if filter.HasParent {
			want := any(nil)
			if filter.ParentID != nil {
				want = *filter.ParentID
			}
			if obj["parentId"] != want {
				continue
			}
		}
		if filter.Name != nil && !strings.Contains(strings.ToLower(obj["name"].(string)), strings.ToLower(*filter.Name)) {
			continue
		}
		if filter.Role != nil && obj["role"] != *filter.Role {
			continue
		}
		if filter.HasAnyRole != nil && (obj["role"] != nil) != *filter.HasAnyRole {
			continue
		}
		if filter.IsSubscribed != nil && st.Subscribed != *filter.IsSubscribed {
			continue
		}
		entries = append(entries, entry{obj["id"].(string), obj["name"].(string)})
	}
	for _, so := range sorts {
		if so.Property == "name" {
			asc := so.IsAscending == nil || *so.IsAscending
			slices.SortStableFunc(entries, func(a, b entry) int {
				r := strings.Compare(strings.ToLower(a.name), strings.ToLower(b.name))
				if !asc {
					r = -r
				}
				return r
			})
		}
	}
	for _, e := range entries {
		ids = append(ids, e.id)
	}
	return window(c, ids, stateString(state.Mailbox))
}

// comparator is RFC 8620 §5.5's Comparator.
type comparator struct {
	Property    string `json:"property"`
	IsAscending *bool  `json:"isAscending"`
	Collation   string `json:"collation"`
	Keyword     string `json:"keyword"`
}

// sortArg reads /query's sort (RFC 8620 §5.5): a property not in
// properties, or a collation not in collations (nil: any), is
// unsupportedSort.
func sortArg(c *call, properties, collations []string) ([]comparator, error) {
	var sorts []comparator
	if err := c.arg("sort", &sorts); err != nil {
		return nil, err
	}
	for _, so := range sorts {
		if !slices.Contains(properties, so.Property) {
			return nil, &methodError{Type: "unsupportedSort", Description: "Cannot sort by " + so.Property}
		}
		if collations != nil && !slices.Contains(collations, so.Collation) {
			return nil, &methodError{Type: "unsupportedSort", Description: "Unsupported collation " + so.Collation}
		}
	}
	return sorts, nil
}

// window applies /query's position, anchor, anchorOffset, limit and
// calculateTotal (RFC 8620 §5.5) to the full result ids.
func window(c *call, ids []string, state string) (any, error) {
	var position, anchorOffset int
	var limit *int
	var anchor *string
	var total bool
	for name, v := range map[string]any{"position": &position, "anchorOffset": &anchorOffset, "limit": &limit, "anchor": &anchor, "calculateTotal": &total} {
		if err := c.arg(name, v); err != nil {
			return nil, err
		}
	}
	if limit != nil && *limit < 0 {
		return nil, invalidArgs("limit must not be negative", "limit")
	}
	if anchor != nil {
		i := slices.Index(ids, *anchor)
		if i < 0 {
			return nil, &methodError{Type: "anchorNotFound"}
		}
		position = max(i+anchorOffset, 0)
	} else if position < 0 {
		position = max(len(ids)+position, 0)
	}
	start := min(position, len(ids))
	end := len(ids)
	if limit != nil {
		end = min(start+*limit, len(ids))
	}
	out := map[string]any{
		"accountId": accountID(c.user.ID), "queryState": state, "canCalculateChanges": false,
		"position": start, "ids": append([]string{}, ids[start:end]...),
	}
	if total {
		out["total"] = len(ids)
	}
	// RFC 8620 §5.5: "limit" is returned only when the server set one;
	// this server uses the client's as given.
	return out, nil
}

// mailboxSet is Mailbox/set (RFC 8621 §2.5): create (name, parentId,
// role, isSubscribed), update (the same), destroy with
// onDestroyRemoveEmails.
func (s *Server) mailboxSet(c *call) (any, error) {
	var create map[string]map[string]any
	var update map[string]map[string]any
	var destroy []string
	var removeEmails bool
	spec := crudSpec(mailstore.KindMailbox, &create, &update, &destroy)
	spec.args["onDestroyRemoveEmails"] = &removeEmails
	op, err := s.openSet(c, spec)
	if err != nil {
		return nil, err
	}

	// Creations in an order where parents come first: a parentId may be
	// a creation id of the same call (RFC 8620 §5.3).
	keys := slices.Sorted(maps.Keys(create))
	for pending := keys; len(pending) > 0; {
		var later []string
		for _, k := range pending {
			if p, ok := create[k]["parentId"].(string); ok && strings.HasPrefix(p, "#") {
				if _, known := c.req.created[p[1:]]; !known && slices.Contains(pending, p[1:]) {
					later = append(later, k)
					continue
				}
			}
			obj, se, err := s.createMailbox(c, create[k])
			if err != nil {
				return nil, err
			}
			if se != nil {
				op.notCreated[k] = se
				continue
			}
			op.create(k, obj, obj["id"].(string))
		}
		if len(later) == len(pending) {
			for _, k := range later {
				op.notCreated[k] = &setError{Type: "invalidProperties", Properties: []string{"parentId"}, Description: "Parent creation failed or is circular"}
			}
			break
		}
		pending = later
	}
	for id, patch := range update {
		se, err := s.updateMailbox(c, id, patch)
		if err != nil {
			return nil, err
		}
		if se != nil {
			op.notUpdated[id] = se
			continue
		}
		op.updated[id] = nil
	}
	for _, id := range destroy {
		se, err := s.destroyMailbox(c, id, removeEmails)
		if err != nil {
			return nil, err
		}
		if se != nil {
			op.notDestroyed[id] = se
			continue
		}
		op.destroyed = append(op.destroyed, id)
	}
	return op.response(setFields...)
}

// resolveMailboxRef turns a Mailbox id or "#creationId" into a store id.
func (c *call) resolveMailboxRef(ref string) (mailstore.MailboxID, bool) {
	if strings.HasPrefix(ref, "#") {
		id, ok := c.req.created[ref[1:]]
		if !ok {
			return 0, false
		}
		ref = id
	}
	return parseMailbox(ref)
}

// fullName is the store name of a mailbox named name under parent (an
// id or creation reference; nil for the top).
func (s *Server) fullName(c *call, parent any, name string) (string, *setError) {
	if name == "" || strings.Contains(name, mailstore.Separator) {
		return "", &setError{Type: "invalidProperties", Properties: []string{"name"}, Description: "A name must be non-empty and must not contain " + mailstore.Separator}
	}
	if parent == nil {
		return name, nil
	}
	ref, ok := parent.(string)
	if !ok {
		return "", &setError{Type: "invalidProperties", Properties: []string{"parentId"}}
	}
	id, ok := c.resolveMailboxRef(ref)
	if !ok {
		return "", &setError{Type: "invalidProperties", Properties: []string{"parentId"}, Description: "No such parent"}
	}
	mb, err := s.store.MailboxByID(c.ctx, c.user.ID, id)
	if err != nil {
		return "", &setError{Type: "invalidProperties", Properties: []string{"parentId"}, Description: "No such parent"}
	}
	return mb.Name + mailstore.Separator + name, nil
}

func (s *Server) createMailbox(c *call, props map[string]any) (map[string]any, *setError, error) {
	for k := range props {
		switch k {
		case "name", "parentId", "role", "isSubscribed", "sortOrder":
		default:
			return nil, &setError{Type: "invalidProperties", Properties: []string{k}}, nil
		}
	}
	name, _ := props["name"].(string)
	full, se := s.fullName(c, props["parentId"], name)
	if se != nil {
		return nil, se, nil
	}
	use := ""
	if r, ok := props["role"]; ok && r != nil {
		role, _ := r.(string)
		if use, ok = specialUseOf(role); !ok {
			return nil, &setError{Type: "invalidProperties", Properties: []string{"role"}, Description: "Unsupported role"}, nil
		}
	}
	if so, ok := props["sortOrder"]; ok && so != float64(0) {
		return nil, &setError{Type: "invalidProperties", Properties: []string{"sortOrder"}, Description: "sortOrder is always 0"}, nil
	}
	mb, err := s.store.CreateMailbox(c.ctx, c.user.ID, full, use)
	if err != nil {
		if se, ok := setErrorOf(err); ok {
			return nil, se, nil
		}
		return nil, nil, err
	}
	if sub, _ := props["isSubscribed"].(bool); sub {
		if err := s.store.SetSubscribed(c.ctx, c.user.ID, full, true); err != nil {
			return nil, nil, err
		}
	}
	// RFC 8620 §5.3: created holds the id and any property the server
	// set or changed.
	return map[string]any{"id": mailboxID(mb.ID), "sortOrder": 0, "totalEmails": 0, "unreadEmails": 0,
		"totalThreads": 0, "unreadThreads": 0, "isSubscribed": props["isSubscribed"] == true,
		"myRights": mailboxObject(mailstore.MailboxStatus{Mailbox: mb}, nil)["myRights"]}, nil, nil
}

func (s *Server) updateMailbox(c *call, id string, patch map[string]any) (*setError, error) {
	n, ok := parseMailbox(id)
	if !ok {
		return &setError{Type: "notFound"}, nil
	}
	mb, err := s.store.MailboxByID(c.ctx, c.user.ID, n)
	if err != nil {
		if se, ok := setErrorOf(err); ok {
			return se, nil
		}
		return nil, err
	}
	parentName, name := splitName(mb.Name)
	var parent any
	if parentName != "" {
		if p, err := s.store.Mailbox(c.ctx, c.user.ID, parentName); err == nil {
			parent = mailboxID(p.ID)
		}
	}
	for k, v := range patch {
		switch k {
		case "name":
			s, ok := v.(string)
			if !ok {
				return &setError{Type: "invalidProperties", Properties: []string{"name"}}, nil
			}
			name = s
		case "parentId":
			parent = v
		case "isSubscribed":
			sub, ok := v.(bool)
			if !ok {
				return &setError{Type: "invalidProperties", Properties: []string{"isSubscribed"}}, nil
			}
			if err := s.store.SetSubscribed(c.ctx, c.user.ID, mb.Name, sub); err != nil {
				return nil, err
			}
		case "role":
			if v != roleOf(mb) {
				return &setError{Type: "invalidProperties", Properties: []string{"role"}, Description: "A role cannot be changed"}, nil
			}
		case "sortOrder":
			if v != float64(0) {
				return &setError{Type: "invalidProperties", Properties: []string{"sortOrder"}, Description: "sortOrder is always 0"}, nil
			}
		default:
			return &setError{Type: "invalidProperties", Properties: []string{k}}, nil
		}
	}
	full, se := s.fullName(c, parent, name)
	if se != nil {
		return se, nil
	}
	if full == mb.Name {
		return nil, nil
	}
	if mb.Name == "INBOX" || strings.HasPrefix(full+mailstore.Separator, mb.Name+mailstore.Separator) {
		// RFC 9051 §6.3.6: renaming INBOX moves its mail, which is not
		// what a JMAP rename means; a mailbox under itself is a cycle.
		return &setError{Type: "forbidden", Description: "This mailbox cannot be moved there"}, nil
	}
	if err := s.store.RenameMailbox(c.ctx, c.user.ID, mb.Name, full); err != nil {
		if se, ok := setErrorOf(err); ok {
			return se, nil
		}
		return nil, err
	}
	return nil, nil
}

// destroyMailbox destroys one mailbox (RFC 8621 §2.5): refused with
// mailboxHasChild when it has children, and with mailboxHasEmail when it
// holds mail and onDestroyRemoveEmails is false. Otherwise its messages
// go with it: an Email in no other mailbox is destroyed, one that is
// elsewhere too only leaves this mailbox (the store's delete cascades to
// this mailbox's messages and nothing else).
func (s *Server) destroyMailbox(c *call, id string, removeEmails bool) (*setError, error) {
	n, ok := parseMailbox(id)
	if !ok {
		return &setError{Type: "notFound"}, nil
	}
	list, _, err := s.mailboxes(c)
	if err != nil {
		return nil, err
	}
	i := slices.IndexFunc(list, func(st mailstore.MailboxStatus) bool { return st.ID == n })
	if i < 0 {
		return &setError{Type: "notFound"}, nil
	}
	mb := list[i]
	for _, other := range list {
		if strings.HasPrefix(other.Name, mb.Name+mailstore.Separator) {
			return &setError{Type: "mailboxHasChild"}, nil
		}
	}
	// The store's count, \Deleted messages included: they are hidden
	// from JMAP, and a destroy without onDestroyRemoveEmails must not
	// take them silently.
	raw, err := s.store.Status(c.ctx, mb.ID)
	if err != nil {
		if se, ok := setErrorOf(err); ok {
			return se, nil
		}
		return nil, err
	}
	if raw.Messages > 0 && !removeEmails {
		return &setError{Type: "mailboxHasEmail"}, nil
	}
	if err := s.store.DeleteMailbox(c.ctx, c.user.ID, mb.Name); err != nil {
		if errors.Is(err, mailstore.ErrProtected) {
			return &setError{Type: "forbidden", Description: "INBOX cannot be destroyed"}, nil
		}
		if se, ok := setErrorOf(err); ok {
			return se, nil
		}
		return nil, err
	}
	return nil, nil
}
