package jmap

import (
	"cmp"
	"encoding/json"
	"errors"
	"html"
	"slices"
	"strings"
	"time"

	"pushmail/mailstore"
)

// emailSortOptions are the Email/query sort properties (RFC 8621 §4.4.2)
// this server supports, advertised as emailQuerySortOptions.
var emailSortOptions = []string{"receivedAt", "size", "from", "to", "subject", "sentAt"}

// emailFilter is an Email/query FilterOperator or FilterCondition (RFC
// 8620 §5.5, RFC 8621 §4.4.1), decoded.
type emailFilter struct {
	// Operator: AND, OR or NOT with Conditions; "" for a condition.
	Operator   string
	Conditions []*emailFilter

	InMailbox          *string  `json:"inMailbox"`
	InMailboxOtherThan []string `json:"inMailboxOtherThan"`
	Before             *string  `json:"before"`
	After              *string  `json:"after"`
	MinSize            *int64   `json:"minSize"`
	MaxSize            *int64   `json:"maxSize"`
	AllInThreadHave    *string  `json:"allInThreadHaveKeyword"`
	SomeInThreadHave   *string  `json:"someInThreadHaveKeyword"`
	NoneInThreadHave   *string  `json:"noneInThreadHaveKeyword"`
	HasKeyword         *string  `json:"hasKeyword"`
	NotKeyword         *string  `json:"notKeyword"`
	Text               *string  `json:"text"`
	From               *string  `json:"from"`
	To                 *string  `json:"to"`
	Cc                 *string  `json:"cc"`
	Bcc                *string  `json:"bcc"`
	Subject            *string  `json:"subject"`
	Body               *string  `json:"body"`
	Header             []string `json:"header"`
}

var filterConditionKeys = []string{"inMailbox", "inMailboxOtherThan", "before", "after", "minSize", "maxSize",
	"allInThreadHaveKeyword", "someInThreadHaveKeyword", "noneInThreadHaveKeyword", "hasKeyword", "notKeyword",
	"text", "from", "to", "cc", "bcc", "subject", "body", "header"}

// decodeFilter decodes a filter; unsupported properties are
// unsupportedFilter (RFC 8620 §5.5), malformed ones invalidArguments.
func decodeFilter(raw json.RawMessage, depth int) (*emailFilter, error) {
	if depth > 32 {
		return nil, &methodError{Type: "unsupportedFilter", Description: "Filter nested too deep"}
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(raw, &keys); err != nil {
		return nil, invalidArgs("filter must be an object", "filter")
	}
	if op, ok := keys["operator"]; ok {
		f := &emailFilter{}
		if json.Unmarshal(op, &f.Operator) != nil || (f.Operator != "AND" && f.Operator != "OR" && f.Operator != "NOT") {
			return nil, invalidArgs("operator must be AND, OR or NOT", "filter")
		}
		var conds []json.RawMessage
		if err := json.Unmarshal(keys["conditions"], &conds); err != nil || len(keys) != 2 {
			return nil, invalidArgs("A FilterOperator has operator and conditions", "filter")
		}
		for _, cr := range conds {
			sub, err := decodeFilter(cr, depth+1)
			if err != nil {
				return nil, err
			}
			f.Conditions = append(f.Conditions, sub)
		}
		return f, nil
	}
	for k := range keys {
		if !slices.Contains(filterConditionKeys, k) {
			return nil, &methodError{Type: "unsupportedFilter", Description: "Unsupported filter property " + k}
		}
	}
	f := &emailFilter{}
	if err := json.Unmarshal(raw, f); err != nil {
		return nil, invalidArgs("A filter property has the wrong type", "filter")
	}
	if f.Header != nil && (len(f.Header) < 1 || len(f.Header) > 2) {
		return nil, invalidArgs("header is [name] or [name, value]", "filter")
	}
	return f, nil
}

// queryIndex is the account's messages, indexed for one query.
type queryIndex struct {
	refs      []mailstore.MessageRef
	mailboxes []mailstore.MailboxID
	byMsg     map[mailstore.MailboxID]map[mailstore.UID]mailstore.EmailID
	received  map[mailstore.EmailID]time.Time
	size      map[mailstore.EmailID]int64
	first     map[mailstore.EmailID]mailstore.MessageRef // a message of each email, for sort fields
}

func (s *Server) newQueryIndex(c *call) (*queryIndex, error) {
	refs, err := s.store.AccountMessages(c.ctx, c.user.ID)
	if err != nil {
		return nil, err
	}
	list, err := s.store.Mailboxes(c.ctx, c.user.ID)
	if err != nil {
		return nil, err
	}
	q := &queryIndex{refs: refs, byMsg: map[mailstore.MailboxID]map[mailstore.UID]mailstore.EmailID{},
		received: map[mailstore.EmailID]time.Time{}, size: map[mailstore.EmailID]int64{},
		first: map[mailstore.EmailID]mailstore.MessageRef{}}
	for _, mb := range list {
		q.mailboxes = append(q.mailboxes, mb.ID)
		q.byMsg[mb.ID] = map[mailstore.UID]mailstore.EmailID{}
	}
	for _, r := range refs {
		if q.byMsg[r.Mailbox] == nil {
			continue // a mailbox created between the two reads
		}
		q.byMsg[r.Mailbox][r.UID] = r.Email
		if d, ok := q.received[r.Email]; !ok || r.InternalDate.Before(d) {
			q.received[r.Email] = r.InternalDate
		}
		q.size[r.Email] = r.Size
		if _, ok := q.first[r.Email]; !ok {
			q.first[r.Email] = r
		}
	}
	return q, nil
}

type emailSet map[mailstore.EmailID]bool

// eval returns the emails matching f.
func (s *Server) eval(c *call, q *queryIndex, f *emailFilter) (emailSet, error) {
	switch f.Operator {
	case "AND", "OR", "NOT":
		var acc emailSet
		for i, sub := range f.Conditions {
			r, err := s.eval(c, q, sub)
			if err != nil {
				return nil, err
			}
			switch {
			case i == 0 || f.Operator != "AND":
				if acc == nil {
					acc = emailSet{}
				}
				for id := range r {
					acc[id] = true
				}
			default:
				for id := range acc {
					if !r[id] {
						delete(acc, id)
					}
				}
			}
		}
		if f.Operator == "NOT" {
			// RFC 8620 §5.5: NOT matches when none of the conditions do.
			out := emailSet{}
			for id := range q.received {
				if !acc[id] {
					out[id] = true
				}
			}
			return out, nil
		}
		if acc == nil {
			acc = emailSet{}
			if f.Operator == "AND" {
				for id := range q.received {
					acc[id] = true
				}
			}
		}
		return acc, nil
	}
	sc, err := criteria(f)
	if err != nil {
		return nil, err
	}
	scope := q.mailboxes
	if f.InMailbox != nil {
		id, ok := parseMailbox(*f.InMailbox)
		if !ok || q.byMsg[id] == nil {
			return emailSet{}, nil
		}
		scope = []mailstore.MailboxID{id}
	}
	if f.InMailboxOtherThan != nil {
		var other []mailstore.MailboxID
		for _, mb := range scope {
			if !slices.Contains(f.InMailboxOtherThan, mailboxID(mb)) {
				other = append(other, mb)
			}
		}
		scope = other
	}
	out := emailSet{}
	for _, mb := range scope {
		uids, err := s.store.Search(c.ctx, mb, sc)
		if err != nil {
			return nil, err
		}
		for _, u := range uids {
			if e, ok := q.byMsg[mb][u]; ok {
				out[e] = true
			}
		}
	}
	return out, nil
}

// criteria turns a FilterCondition's message conditions into a store
// search of one mailbox (RFC 8621 §4.4.1 over the store's RFC 9051
// search keys: text, from, to, cc, bcc, subject and body match
// case-insensitive substrings of the decoded fields and text parts).
func criteria(f *emailFilter) (*mailstore.SearchCriteria, error) {
	sc := &mailstore.SearchCriteria{}
	date := func(s *string, name string) (time.Time, error) {
		t, err := time.Parse(time.RFC3339, *s)
		if err != nil {
			return time.Time{}, invalidArgs(name+" must be a UTCDate", "filter")
		}
		return t, nil
	}
	if f.Before != nil {
		t, err := date(f.Before, "before")
		if err != nil {
			return nil, err
		}
		sc.Before = t // receivedAt < before
	}
	if f.After != nil {
		t, err := date(f.After, "after")
		if err != nil {
			return nil, err
		}
		sc.Since = t // receivedAt >= after
	}
	if f.MinSize != nil {
		if *f.MinSize > 0 {
			sc.Larger = *f.MinSize - 1 // size >= minSize
		}
	}
	if f.MaxSize != nil {
		if *f.MaxSize <= 0 {
			sc.UIDs = []mailstore.UIDSet{{}} // size < 0: nothing
		} else {
			sc.Smaller = *f.MaxSize // size < maxSize
		}
	}
	// Every Email is its own Thread: the thread keyword conditions are
	// the email's.
	for _, kw := range []*string{f.HasKeyword, f.AllInThreadHave, f.SomeInThreadHave} {
		if kw != nil {
			if !validKeyword(*kw) {
				return nil, invalidArgs("Invalid keyword", "filter")
			}
			sc.Flag = append(sc.Flag, flagOf(*kw))
		}
	}
	for _, kw := range []*string{f.NotKeyword, f.NoneInThreadHave} {
		if kw != nil {
			if !validKeyword(*kw) {
				return nil, invalidArgs("Invalid keyword", "filter")
			}
			sc.NotFlag = append(sc.NotFlag, flagOf(*kw))
		}
	}
	if f.Text != nil {
		sc.Text = append(sc.Text, *f.Text)
	}
	for key, v := range map[string]*string{"From": f.From, "To": f.To, "Cc": f.Cc, "Bcc": f.Bcc} {
		if v != nil {
			sc.Address = append(sc.Address, mailstore.HeaderMatch{Key: key, Value: *v})
		}
	}
	if f.Subject != nil {
		sc.Header = append(sc.Header, mailstore.HeaderMatch{Key: "Subject", Value: *f.Subject})
	}
	if f.Body != nil {
		sc.Body = append(sc.Body, *f.Body)
	}
	if f.Header != nil {
		h := mailstore.HeaderMatch{Key: f.Header[0]}
		if len(f.Header) == 2 {
			h.Value = f.Header[1]
		}
		sc.Header = append(sc.Header, h)
	}
	return sc, nil
}

// emailQuery is Email/query (RFC 8621 §4.4).
func (s *Server) emailQuery(c *call) (any, error) {
	if err := c.known("accountId", "filter", "sort", "position", "anchor", "anchorOffset", "limit", "calculateTotal", "collapseThreads"); err != nil {
		return nil, err
	}
	var filter *emailFilter
	if c.has("filter") {
		var err error
		if filter, err = decodeFilter(c.args["filter"], 0); err != nil {
			return nil, err
		}
	}
	// RFC 8620 §5.5: a collation is one of the session's
	// collationAlgorithms; "" leaves it to the server.
	sorts, err := sortArg(c, emailSortOptions, []string{"", "i;ascii-casemap"})
	if err != nil {
		return nil, err
	}
	state, err := s.store.AccountState(c.ctx, c.user.ID)
	if err != nil {
		return nil, err
	}
	if res, ok, err := s.emailQueryByDate(c, filter, sorts, stateString(state.Email)); ok || err != nil {
		return res, err
	}
	q, err := s.newQueryIndex(c)
	if err != nil {
		return nil, err
	}
	var matched emailSet
	if filter != nil {
		if matched, err = s.eval(c, q, filter); err != nil {
			return nil, err
		}
	} else {
		matched = emailSet{}
		for id := range q.received {
			matched[id] = true
		}
	}
	// RFC 8621 §4.1.1: messages with \Deleted are not visible.
	for _, mb := range q.mailboxes {
		uids, err := s.store.Search(c.ctx, mb, &mailstore.SearchCriteria{Flag: []string{mailstore.FlagDeleted}})
		if err != nil {
			return nil, err
		}
		for _, u := range uids {
			delete(matched, q.byMsg[mb][u])
		}
	}
	ids := make([]mailstore.EmailID, 0, len(matched))
	for id := range matched {
		ids = append(ids, id)
	}
	if err := s.sortEmails(c, q, ids, sorts); err != nil {
		return nil, err
	}
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = emailID(id)
	}
	return window(c, out, stateString(state.Email))
}

// emailQueryByDate answers the commonest query, one mailbox by
// receivedAt with a position and a limit (a client's message list), from
// an index range in the store (EmailPage) instead of the whole account:
// ok false for any other query.
func (s *Server) emailQueryByDate(c *call, filter *emailFilter, sorts []comparator, state string) (any, bool, error) {
	if filter == nil || filter.InMailbox == nil || c.has("anchor") {
		return nil, false, nil
	}
	only := emailFilter{InMailbox: filter.InMailbox}
	if jsonString(*filter) != jsonString(only) || len(sorts) > 1 || (len(sorts) == 1 && sorts[0].Property != "receivedAt") {
		return nil, false, nil
	}
	var position int
	var limit *int
	var total bool
	for name, v := range map[string]any{"position": &position, "limit": &limit, "calculateTotal": &total} {
		if err := c.arg(name, v); err != nil {
			return nil, true, err
		}
	}
	if position < 0 || limit == nil || *limit < 0 || *limit > 1000 {
		return nil, false, nil
	}
	mb, ok := parseMailbox(*filter.InMailbox)
	if !ok {
		return nil, false, nil
	}
	desc := len(sorts) == 1 && sorts[0].IsAscending != nil && !*sorts[0].IsAscending
	ids, n, err := s.store.EmailPage(c.ctx, c.user.ID, mb, desc, position, *limit)
	if errors.Is(err, mailstore.ErrNoSuchMailbox) {
		return nil, false, nil // the general path answers: no such mailbox matches nothing
	}
	if err != nil {
		return nil, true, err
	}
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = emailID(id)
	}
	res := map[string]any{"accountId": accountID(c.user.ID), "queryState": state, "canCalculateChanges": false,
		"position": position, "ids": out}
	if total {
		res["total"] = n
	}
	return res, true, nil
}

// jsonString encodes v for comparison; a value that cannot be encoded
// compares as its error.
func jsonString(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return err.Error()
	}
	return string(b)
}

// sortEmails sorts ids by the comparators, then by id in the first
// comparator's direction; with none, by receivedAt ascending.
func (s *Server) sortEmails(c *call, q *queryIndex, ids []mailstore.EmailID, sorts []comparator) error {
	var infos map[mailstore.EmailID]mailstore.SortInfo
	var fields mailstore.SortFields
	for _, so := range sorts {
		switch so.Property {
		case "from":
			fields.DisplayFrom = true
		case "to":
			fields.DisplayTo = true
		case "subject":
			fields.Subject = true
		case "sentAt":
			fields.Sent = true
		}
	}
	if fields != (mailstore.SortFields{}) {
		infos = map[mailstore.EmailID]mailstore.SortInfo{}
		byMailbox := map[mailstore.MailboxID][]mailstore.UID{}
		for _, id := range ids {
			r := q.first[id]
			byMailbox[r.Mailbox] = append(byMailbox[r.Mailbox], r.UID)
		}
		for mb, uids := range byMailbox {
			slices.Sort(uids)
			list, err := s.store.SortInfo(c.ctx, mb, uids, fields)
			if err != nil {
				return err
			}
			for _, si := range list {
				infos[q.byMsg[mb][si.UID]] = si
			}
		}
	}
	if len(sorts) == 0 {
		sorts = []comparator{{Property: "receivedAt"}}
	}
	slices.SortFunc(ids, func(a, b mailstore.EmailID) int {
		for _, so := range sorts {
			var r int
			switch so.Property {
			case "receivedAt":
				r = q.received[a].Compare(q.received[b])
			case "size":
				r = cmp.Compare(q.size[a], q.size[b])
			case "from":
				r = strings.Compare(strings.ToLower(infos[a].DisplayFrom), strings.ToLower(infos[b].DisplayFrom))
			case "to":
				r = strings.Compare(strings.ToLower(infos[a].DisplayTo), strings.ToLower(infos[b].DisplayTo))
			case "subject":
				r = strings.Compare(baseSubject(infos[a].Subject), baseSubject(infos[b].Subject))
			case "sentAt":
				r = infos[a].Sent.Compare(infos[b].Sent)
			}
			if so.IsAscending != nil && !*so.IsAscending {
				r = -r
			}
			if r != 0 {
				return r
			}
		}
		if sorts[0].IsAscending != nil && !*sorts[0].IsAscending {
			return cmp.Compare(b, a)
		}
		return cmp.Compare(a, b)
	})
	return nil
}

// baseSubject approximates RFC 5256 §2.1's base subject, which RFC 8621
// §4.4.2 sorts "subject" by: lower case, leading "re:", "fwd:" and
// "fw:" and trailing "(fwd)" removed.
func baseSubject(s string) string {
	s = strings.ToLower(strings.Join(strings.Fields(s), " "))
	for {
		t := strings.TrimSpace(strings.TrimSuffix(s, "(fwd)"))
		for _, p := range []string{"re:", "fwd:", "fw:"} {
			t = strings.TrimSpace(strings.TrimPrefix(t, p))
		}
		if t == s {
			return s
		}
		s = t
	}
}

// searchSnippetGet is SearchSnippet/get (RFC 8621 §5.1): the subject
// and a piece of the body with the filter's text, subject and body
// terms marked with <mark>, HTML-escaped; null where nothing matched.
func (s *Server) searchSnippetGet(c *call) (any, error) {
	if err := c.known("accountId", "filter", "emailIds"); err != nil {
		return nil, err
	}
	var ids []string
	if err := c.arg("emailIds", &ids); err != nil {
		return nil, err
	}
	if len(ids) > s.limits.MaxObjectsInGet {
		return nil, &methodError{Type: "requestTooLarge", Description: "More ids than maxObjectsInGet"}
	}
	var terms []string
	if c.has("filter") {
		f, err := decodeFilter(c.args["filter"], 0)
		if err != nil {
			return nil, err
		}
		terms = filterTerms(f, nil)
	}
	// RFC 8621 §4.1.1: an email with \Deleted is notFound, as Email/get
	// answers it.
	emails, notFound, err := s.visibleEmails(c, ids, parseEmail, emailID, mailstore.EmailOptions{Parsed: true, Body: true})
	if err != nil {
		return nil, err
	}
	list := []any{}
	for _, e := range emails {
		hdr := e.Raw[:min(int(e.Parsed.Root.BodyStart), len(e.Raw))]
		subject, _ := headerValue(hdr, headerProperty{name: "Subject", form: "Text"}).(string)
		root := buildPart(e, &e.Parsed.Root, "")
		text, html, atts := []*bodyPart{}, []*bodyPart{}, []*bodyPart{}
		parseStructure([]*bodyPart{root}, "mixed", false, &html, &text, &atts)
		body := ""
		if len(text) > 0 && text[0].part.Type == "text" {
			body = strings.Join(strings.Fields(partText(e, text[0])), " ")
		}
		list = append(list, map[string]any{"emailId": emailID(e.ID), "subject": highlight(subject, terms, false), "preview": highlight(body, terms, true)})
	}
	return map[string]any{"accountId": accountID(c.user.ID), "list": list, "notFound": notFound}, nil
}

// filterTerms collects the text the filter searches for (text, subject,
// body), outside NOT.
func filterTerms(f *emailFilter, acc []string) []string {
	if f.Operator == "NOT" {
		return acc
	}
	for _, sub := range f.Conditions {
		acc = filterTerms(sub, acc)
	}
	for _, t := range []*string{f.Text, f.Subject, f.Body} {
		if t != nil && *t != "" {
			acc = append(acc, *t)
		}
	}
	return acc
}

// highlight marks the terms in s (case-insensitively), escaping the
// rest as HTML; nil when no term occurs. excerpt: only about 200
// characters around the first match (RFC 8621 §5: "the preview ...
// should be a short extract").
func highlight(s string, terms []string, excerpt bool) any {
	lower := asciiLower(s)
	first := -1
	for _, t := range terms {
		if i := strings.Index(lower, asciiLower(t)); i >= 0 && (first < 0 || i < first) {
			first = i
		}
	}
	if first < 0 {
		return nil
	}
	if excerpt {
		start := max(first-60, 0)
		for start > 0 && start < len(s) && (s[start]&0xC0) == 0x80 {
			start--
		}
		end := min(start+200, len(s))
		for end < len(s) && (s[end]&0xC0) == 0x80 {
			end++
		}
		s, lower = s[start:end], lower[start:end]
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		matched := 0
		for _, t := range terms {
			if t != "" && strings.HasPrefix(lower[i:], asciiLower(t)) && len(t) > matched {
				matched = len(t)
			}
		}
		if matched > 0 && i+matched <= len(s) {
			b.WriteString("<mark>" + html.EscapeString(s[i:i+matched]) + "</mark>")
			i += matched
			continue
		}
		j := i + 1
		for j < len(s) && (s[j]&0xC0) == 0x80 {
			j++
		}
		b.WriteString(html.EscapeString(s[i:j]))
		i = j
	}
	return b.String()
}

// asciiLower lower-cases ASCII letters only, keeping byte offsets, so
// that a match found in the result is at the same place in the input.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
