package jmap

import (
	"bytes"
	"encoding/base64"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"pushmail/mailstore"
	"pushmail/message"
)

// emailDefaultProperties is RFC 8621 §4.2's default for Email/get.
var emailDefaultProperties = []string{"id", "blobId", "threadId", "mailboxIds", "keywords", "size", "receivedAt",
	"messageId", "inReplyTo", "references", "sender", "from", "to", "cc", "bcc", "replyTo", "subject", "sentAt",
	"hasAttachment", "preview", "bodyValues", "textBody", "htmlBody", "attachments"}

// emailProperties are all the fixed properties; header:… are parsed.
var emailProperties = append(slices.Clone(emailDefaultProperties), "headers", "bodyStructure")

// bodyDefaultProperties is RFC 8621 §4.2's default bodyProperties.
var bodyDefaultProperties = []string{"partId", "blobId", "size", "name", "type", "charset", "disposition", "cid", "language", "location"}

var bodyProperties = append(slices.Clone(bodyDefaultProperties), "headers", "subParts")

// keywordOf maps a stored flag to its JMAP keyword (RFC 8621 §4.1.1),
// "" for \Deleted, which JMAP does not show, and \Recent.
func keywordOf(flag string) string {
	switch flag {
	case mailstore.FlagSeen:
		return "$seen"
	case mailstore.FlagFlagged:
		return "$flagged"
	case mailstore.FlagAnswered:
		return "$answered"
	case mailstore.FlagDraft:
		return "$draft"
	case mailstore.FlagDeleted, `\Recent`:
		return ""
	}
	return strings.ToLower(flag)
}

// flagOf is keywordOf's inverse for Email/set and Email/import.
func flagOf(kw string) string {
	switch strings.ToLower(kw) {
	case "$seen":
		return mailstore.FlagSeen
	case "$flagged":
		return mailstore.FlagFlagged
	case "$answered":
		return mailstore.FlagAnswered
	case "$draft":
		return mailstore.FlagDraft
	}
	return strings.ToLower(kw)
}

// validKeyword: RFC 8621 §4.1.1, keywords are 1 to 255 characters of
// %x21-%x7e without ( ) { ] % * " \.
func validKeyword(kw string) bool {
	if kw == "" || len(kw) > 255 {
		return false
	}
	for i := 0; i < len(kw); i++ {
		c := kw[i]
		if c < 0x21 || c > 0x7e || strings.IndexByte(`(){]%*"\`, c) >= 0 {
			return false
		}
	}
	return true
}

func keywordsOf(flags []string) map[string]bool {
	kw := map[string]bool{}
	for _, f := range flags {
		if k := keywordOf(f); k != "" {
			kw[k] = true
		}
	}
	return kw
}

// hidden reports an email JMAP must not show: RFC 8621 §4.1.1, "Any
// message with the \Deleted keyword MUST NOT be visible via JMAP".
func hidden(e *mailstore.Email) bool { return slices.Contains(e.Flags, mailstore.FlagDeleted) }

// visibleEmails loads the emails that ids name, each read by parse
// (Email or Thread ids), and returns those JMAP shows, in the store's
// order, and notFound: the ids that do not parse, in ids' order, then
// as idOf names them those the account lacks or hides (\Deleted).
func (s *Server) visibleEmails(c *call, ids []string, parse func(string) (mailstore.EmailID, bool), idOf func(mailstore.EmailID) string,
	opts mailstore.EmailOptions) (visible []*mailstore.Email, notFound []string, err error) {
	notFound = []string{}
	var want []mailstore.EmailID
	for _, id := range ids {
		n, ok := parse(id)
		if !ok {
			notFound = append(notFound, id)
			continue
		}
		want = append(want, n)
	}
	emails, err := s.store.Emails(c.ctx, c.user.ID, want, opts)
	if err != nil {
		return nil, nil, err
	}
	found := map[mailstore.EmailID]bool{}
	for i := range emails {
		if hidden(&emails[i]) {
			continue
		}
		found[emails[i].ID] = true
		visible = append(visible, &emails[i])
	}
	for _, n := range want {
		if !found[n] {
			notFound = append(notFound, idOf(n))
		}
	}
	return visible, notFound, nil
}

// emailGetArgs are Email/get's arguments beyond /get's (RFC 8621 §4.2).
type emailGetArgs struct {
	bodyProps         []string
	fetchText         bool
	fetchHTML         bool
	fetchAll          bool
	maxBodyValueBytes int
}

// emailGet is Email/get (RFC 8621 §4.2).
func (s *Server) emailGet(c *call) (any, error) {
	ids, props, err := s.getArgs(c, getSpec{all: emailProperties, defaults: emailDefaultProperties, headers: true,
		needIDs: "Email/get needs ids",
		extra:   []string{"bodyProperties", "fetchTextBodyValues", "fetchHTMLBodyValues", "fetchAllBodyValues", "maxBodyValueBytes"}})
	if err != nil {
		return nil, err
	}
	a := emailGetArgs{bodyProps: bodyDefaultProperties}
	if c.has("bodyProperties") {
		a.bodyProps = nil // not into the shared default's array
		if err := c.arg("bodyProperties", &a.bodyProps); err != nil {
			return nil, err
		}
		for _, p := range a.bodyProps {
			if !slices.Contains(bodyProperties, p) {
				if _, ok := parseHeaderProperty(p); !ok {
					return nil, invalidArgs("Unknown body property "+p, "bodyProperties")
				}
			}
		}
	}
	for name, v := range map[string]any{"fetchTextBodyValues": &a.fetchText, "fetchHTMLBodyValues": &a.fetchHTML,
		"fetchAllBodyValues": &a.fetchAll, "maxBodyValueBytes": &a.maxBodyValueBytes} {
		if err := c.arg(name, v); err != nil {
			return nil, err
		}
	}
	if a.maxBodyValueBytes < 0 {
		return nil, invalidArgs("maxBodyValueBytes must not be negative", "maxBodyValueBytes")
	}
	state, err := s.store.AccountState(c.ctx, c.user.ID)
	if err != nil {
		return nil, err
	}
	needBody := false
	for _, p := range props {
		if !slices.Contains([]string{"id", "blobId", "threadId", "mailboxIds", "keywords", "size", "receivedAt"}, p) {
			needBody = true
		}
	}
	emails, notFound, err := s.visibleEmails(c, ids, parseEmail, emailID, mailstore.EmailOptions{Parsed: needBody, Body: needBody})
	if err != nil {
		return nil, err
	}
	list := []any{}
	for _, e := range emails {
		list = append(list, renderEmail(e, props, &a))
	}
	return map[string]any{"accountId": accountID(c.user.ID), "state": stateString(state.Email), "list": list, "notFound": notFound}, nil
}

// renderEmail builds the requested properties of one email.
func renderEmail(e *mailstore.Email, props []string, a *emailGetArgs) map[string]any {
	out := map[string]any{}
	var hdr []byte
	var root *bodyPart
	var text, html, atts []*bodyPart
	if e.Parsed != nil {
		hdr = e.Raw[:min(int(e.Parsed.Root.BodyStart), len(e.Raw))]
		root = buildPart(e, &e.Parsed.Root, "")
		text, html, atts = []*bodyPart{}, []*bodyPart{}, []*bodyPart{}
		parseStructure([]*bodyPart{root}, "mixed", false, &html, &text, &atts)
	}
	for _, p := range props {
		switch p {
		case "id":
			out[p] = emailID(e.ID)
		case "blobId":
			out[p] = emailBlobID(e.ID)
		case "threadId":
			out[p] = threadID(e.ID)
		case "mailboxIds":
			m := map[string]bool{}
			for mb := range e.Mailboxes {
				m[mailboxID(mb)] = true
			}
			out[p] = m
		case "keywords":
			out[p] = keywordsOf(e.Flags)
		case "size":
			out[p] = e.Size
		case "receivedAt":
			out[p] = e.InternalDate.UTC().Format(time.RFC3339)
		case "messageId":
			out[p] = headerValue(hdr, headerProperty{name: "Message-ID", form: "MessageIds"})
		case "inReplyTo":
			out[p] = headerValue(hdr, headerProperty{name: "In-Reply-To", form: "MessageIds"})
		case "references":
			out[p] = headerValue(hdr, headerProperty{name: "References", form: "MessageIds"})
		case "sender", "from", "to", "cc", "bcc", "replyTo":
			name := map[string]string{"sender": "Sender", "from": "From", "to": "To", "cc": "Cc", "bcc": "Bcc", "replyTo": "Reply-To"}[p]
			out[p] = headerValue(hdr, headerProperty{name: name, form: "Addresses"})
		case "subject":
			out[p] = headerValue(hdr, headerProperty{name: "Subject", form: "Text"})
		case "sentAt":
			out[p] = headerValue(hdr, headerProperty{name: "Date", form: "Date"})
		case "headers":
			out[p] = rawHeaders(hdr)
		case "bodyStructure":
			out[p] = root.render(a.bodyProps, e)
		case "textBody", "htmlBody", "attachments":
			list := map[string][]*bodyPart{"textBody": text, "htmlBody": html, "attachments": atts}[p]
			rendered := make([]any, 0, len(list))
			for _, bp := range list {
				rendered = append(rendered, bp.render(a.bodyProps, e))
			}
			out[p] = rendered
		case "hasAttachment":
			out[p] = len(atts) > 0
		case "preview":
			out[p] = preview(e, text, html)
		case "bodyValues":
			values := map[string]any{}
			add := func(list []*bodyPart) {
				for _, bp := range list {
					if bp.part.Type == "text" {
						values[bp.partID] = bodyValue(e, bp, a.maxBodyValueBytes)
					}
				}
			}
			if a.fetchAll {
				root.walk(func(bp *bodyPart) {
					if bp.part.Type == "text" && bp.subParts == nil {
						values[bp.partID] = bodyValue(e, bp, a.maxBodyValueBytes)
					}
				})
			}
			if a.fetchText {
				add(text)
			}
			if a.fetchHTML {
				add(html)
			}
			out[p] = values
		default:
			if hp, ok := parseHeaderProperty(p); ok {
				out[p] = headerValue(hdr, hp)
			}
		}
	}
	return out
}

// bodyPart is one MIME part as RFC 8621 §4.1.4's EmailBodyPart sees it.
type bodyPart struct {
	part     *message.Part
	partID   string // "" for a multipart, which has none
	subParts []*bodyPart
}

// buildPart numbers the parts as IMAP sections (RFC 9051 §6.4.5): the
// root of a single-part message is "1"; a multipart's children are 1,
// 2, … under their parent's number.
func buildPart(e *mailstore.Email, p *message.Part, section string) *bodyPart {
	bp := &bodyPart{part: p}
	if p.Type == "multipart" {
		bp.subParts = []*bodyPart{}
		for i := range p.Parts {
			sub := strconv.Itoa(i + 1)
			if section != "" {
				sub = section + "." + sub
			}
			bp.subParts = append(bp.subParts, buildPart(e, &p.Parts[i], sub))
		}
		return bp
	}
	if section == "" {
		section = "1"
	}
	bp.partID = section
	return bp
}

func (bp *bodyPart) walk(fn func(*bodyPart)) {
	fn(bp)
	for _, sub := range bp.subParts {
		sub.walk(fn)
	}
}

func (bp *bodyPart) mediaType() string { return bp.part.Type + "/" + bp.part.Subtype }

// name is the part's file name: Content-Disposition's filename, or
// Content-Type's name (RFC 8621 §4.1.4).
func (bp *bodyPart) name() any {
	if n := bp.part.DispositionParams["filename"]; n != "" {
		return n
	}
	if n := bp.part.Params["name"]; n != "" {
		return n
	}
	return nil
}

func isInlineMediaType(t string) bool {
	return strings.HasPrefix(t, "image/") || strings.HasPrefix(t, "audio/") || strings.HasPrefix(t, "video/")
}

// parseStructure is RFC 8621 §4.1.4's algorithm that chooses textBody,
// htmlBody and attachments from the part tree. html or text nil stands
// for the algorithm's null (that list no longer collects here).
func parseStructure(parts []*bodyPart, multipartType string, inAlternative bool, html, text, atts *[]*bodyPart) {
	textLength, htmlLength := -1, -1
	if text != nil {
		textLength = len(*text)
	}
	if html != nil {
		htmlLength = len(*html)
	}
	for i, part := range parts {
		t := part.mediaType()
		isMultipart := part.part.Type == "multipart"
		isInline := part.part.Disposition != "attachment" &&
			(t == "text/plain" || t == "text/html" || isInlineMediaType(t)) &&
			(i == 0 || (multipartType != "related" && (isInlineMediaType(t) || part.name() == nil)))
		switch {
		case isMultipart:
			sub := part.part.Subtype
			parseStructure(part.subParts, sub, inAlternative || sub == "alternative", html, text, atts)
		case isInline:
			if multipartType == "alternative" {
				switch t {
				case "text/plain":
					if text != nil {
						*text = append(*text, part)
					}
				case "text/html":
					if html != nil {
						*html = append(*html, part)
					}
				default:
					*atts = append(*atts, part)
				}
				continue
			} else if inAlternative {
				if t == "text/plain" {
					html = nil
				}
				if t == "text/html" {
					text = nil
				}
			}
			if text != nil {
				*text = append(*text, part)
			}
			if html != nil {
				*html = append(*html, part)
			}
			if (text == nil || html == nil) && isInlineMediaType(t) {
				*atts = append(*atts, part)
			}
		default:
			*atts = append(*atts, part)
		}
	}
	if multipartType == "alternative" && text != nil && html != nil {
		if textLength == len(*text) && htmlLength != len(*html) {
			*text = append(*text, (*html)[htmlLength:]...)
		}
		if htmlLength == len(*html) && textLength != len(*text) {
			*html = append(*html, (*text)[textLength:]...)
		}
	}
}

// partBlobID names a leaf part's decoded content: "P" + the email's id
// + "_" + its section with dots as underscores (ids allow no dots).
func partBlobID(e mailstore.EmailID, partID string) string {
	return "P" + strconv.FormatInt(int64(e), 10) + "_" + strings.ReplaceAll(partID, ".", "_")
}

// decodedSize is a leaf part's size after transfer decoding (RFC 8621
// §4.1.4 "size"); base64 is counted, not decoded.
func decodedSize(raw []byte, p *message.Part) int64 {
	body := raw[min(int(p.BodyStart), len(raw)):min(int(p.End), len(raw))]
	switch p.Encoding {
	case "base64":
		n := 0
		pad := 0
		for _, c := range body {
			switch {
			case c == '=':
				pad++
				n++
			case c == '\r' || c == '\n' || c == ' ' || c == '\t':
			default:
				n++
			}
		}
		return int64(max(n/4*3-pad, 0))
	case "quoted-printable":
		return int64(len(message.DecodeText(p.Encoding, "", body)))
	}
	return int64(len(body))
}

// render builds the requested EmailBodyPart properties.
func (bp *bodyPart) render(props []string, e *mailstore.Email) map[string]any {
	out := map[string]any{}
	p := bp.part
	hdr := e.Raw[min(int(p.HeaderStart), len(e.Raw)):min(int(p.BodyStart), len(e.Raw))]
	for _, prop := range props {
		switch prop {
		case "partId":
			out[prop] = nullable(bp.partID, bp.partID != "")
		case "blobId":
			out[prop] = nullable(partBlobID(e.ID, bp.partID), bp.partID != "")
		case "size":
			if bp.partID == "" {
				out[prop] = 0
			} else {
				out[prop] = decodedSize(e.Raw, p)
			}
		case "headers":
			out[prop] = rawHeaders(hdr)
		case "name":
			out[prop] = bp.name()
		case "type":
			out[prop] = bp.mediaType()
		case "charset":
			if cs := p.Params["charset"]; cs != "" {
				out[prop] = cs
			} else if p.Type == "text" {
				out[prop] = "us-ascii" // RFC 8621 §4.1.4: the implicit charset of text/*
			} else {
				out[prop] = nil
			}
		case "disposition":
			out[prop] = nullable(p.Disposition, p.Disposition != "")
		case "cid":
			out[prop] = nullable(strings.Trim(p.ID, "<>"), p.ID != "")
		case "language":
			out[prop] = nullable(p.Language, len(p.Language) > 0)
		case "location":
			out[prop] = nullable(p.Location, p.Location != "")
		case "subParts":
			out[prop] = nullable(bp.renderSubParts(props, e), bp.subParts != nil)
		default:
			if hp, ok := parseHeaderProperty(prop); ok {
				out[prop] = headerValue(hdr, hp)
			}
		}
	}
	if bp.subParts != nil && !slices.Contains(props, "subParts") {
		// RFC 8621 §4.1.4: a multipart's subParts are how its children
		// are reached; bodyStructure always carries them.
		out["subParts"] = bp.renderSubParts(props, e)
	}
	return out
}

// renderSubParts renders a multipart's children with props; empty for
// a leaf.
func (bp *bodyPart) renderSubParts(props []string, e *mailstore.Email) []any {
	subs := make([]any, 0, len(bp.subParts))
	for _, sub := range bp.subParts {
		subs = append(subs, sub.render(props, e))
	}
	return subs
}

// nullable is v when present, otherwise JSON's null: how a property
// without a value is returned (RFC 8620 §5.1).
func nullable(v any, present bool) any {
	if !present {
		return nil
	}
	return v
}

// partText is a text part's content, decoded to UTF-8.
func partText(e *mailstore.Email, bp *bodyPart) string {
	p := bp.part
	body := e.Raw[min(int(p.BodyStart), len(e.Raw)):min(int(p.End), len(e.Raw))]
	return strings.ToValidUTF8(string(message.DecodeText(p.Encoding, p.Params["charset"], body)), "\uFFFD")
}

// bodyValue is RFC 8621 §4.1.4's EmailBodyValue, cut at max bytes (0:
// no cut) on a character boundary.
func bodyValue(e *mailstore.Email, bp *bodyPart, max int) map[string]any {
	v := partText(e, bp)
	truncated := false
	if max > 0 && len(v) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(v[cut]) {
			cut--
		}
		v, truncated = v[:cut], true
	}
	return map[string]any{"value": v, "isEncodingProblem": false, "isTruncated": truncated}
}

// preview is RFC 8621 §4.1.4's preview: up to 256 characters of the
// first text part, white space collapsed; HTML tags dropped when only
// HTML is there.
func preview(e *mailstore.Email, text, html []*bodyPart) string {
	var src string
	switch {
	case len(text) > 0 && text[0].part.Type == "text":
		src = partText(e, text[0])
		if text[0].part.Subtype == "html" {
			src = stripTags(src)
		}
	case len(html) > 0 && html[0].part.Type == "text":
		src = stripTags(partText(e, html[0]))
	}
	src = strings.Join(strings.Fields(src), " ")
	if utf8.RuneCountInString(src) > 256 {
		r := []rune(src)
		src = string(r[:256])
	}
	return src
}

func stripTags(s string) string {
	var b strings.Builder
	in := false
	for _, r := range s {
		switch {
		case r == '<':
			in = true
		case r == '>':
			in = false
			b.WriteByte(' ')
		case !in:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// headerProperty is a parsed "header:{name}[:as{Form}][:all]" (RFC
// 8621 §4.1.3).
type headerProperty struct {
	name string
	form string // Raw, Text, Addresses, GroupedAddresses, MessageIds, Date, URLs
	all  bool
}

func parseHeaderProperty(p string) (headerProperty, bool) {
	parts := strings.Split(p, ":")
	if len(parts) < 2 || len(parts) > 4 || parts[0] != "header" || parts[1] == "" {
		return headerProperty{}, false
	}
	hp := headerProperty{name: parts[1], form: "Raw"}
	for _, x := range parts[2:] {
		switch {
		case x == "all" && !hp.all:
			hp.all = true
		case strings.HasPrefix(x, "as") && hp.form == "Raw" && !hp.all:
			hp.form = x[2:]
			switch hp.form {
			case "Raw", "Text", "Addresses", "GroupedAddresses", "MessageIds", "Date", "URLs":
			default:
				return headerProperty{}, false
			}
		default:
			return headerProperty{}, false
		}
	}
	return hp, true
}

// headerValue is a header field in a parsed form (RFC 8621 §4.1.2):
// the last field of that name, or with :all every one in order; null
// (or []) when there is none.
func headerValue(hdr []byte, hp headerProperty) any {
	var values []any
	message.EachField(hdr, func(name, value []byte) bool {
		if strings.EqualFold(string(name), hp.name) {
			values = append(values, parseForm(value, hp.form))
		}
		return true
	})
	if hp.all {
		if values == nil {
			return []any{}
		}
		return values
	}
	if len(values) == 0 {
		return nil
	}
	return values[len(values)-1]
}

// emailAddress is RFC 8621 §4.1.2.3's EmailAddress.
type emailAddress struct {
	Name  *string `json:"name"`
	Email string  `json:"email"`
}

func addressOf(a message.Address) emailAddress {
	ea := emailAddress{Email: a.Mailbox}
	if a.Host != "" {
		ea.Email += "@" + a.Host
	}
	if a.Name != "" {
		n := a.Name
		ea.Name = &n
	}
	return ea
}

func parseForm(value []byte, form string) any {
	switch form {
	case "Raw":
		return strings.ToValidUTF8(string(value), "\uFFFD")
	case "Text":
		return strings.TrimSpace(message.FieldText(value))
	case "Addresses":
		out := []emailAddress{}
		for _, a := range message.ParseAddressList(string(value)) {
			if !a.Group && !a.GroupEnd {
				out = append(out, addressOf(a))
			}
		}
		return out
	case "GroupedAddresses":
		type group struct {
			Name      *string        `json:"name"`
			Addresses []emailAddress `json:"addresses"`
		}
		out := []group{}
		cur := -1
		for _, a := range message.ParseAddressList(string(value)) {
			switch {
			case a.Group:
				n := a.Name
				out = append(out, group{Name: &n, Addresses: []emailAddress{}})
				cur = len(out) - 1
			case a.GroupEnd:
				cur = -1
			default:
				if cur < 0 {
					out = append(out, group{Addresses: []emailAddress{}})
					cur = len(out) - 1
					out[cur].Addresses = append(out[cur].Addresses, addressOf(a))
					cur = -1
					continue
				}
				out[cur].Addresses = append(out[cur].Addresses, addressOf(a))
			}
		}
		return out
	case "MessageIds":
		ids := message.ParseMessageIDs(message.FieldText(value))
		if ids == nil {
			return nil
		}
		return ids
	case "Date":
		t := message.ParseDate(strings.TrimSpace(message.FieldText(value)))
		if t.IsZero() {
			return nil
		}
		return t.Format(time.RFC3339)
	case "URLs":
		var urls []string
		v := string(value)
		for {
			i := strings.IndexByte(v, '<')
			if i < 0 {
				break
			}
			j := strings.IndexByte(v[i:], '>')
			if j < 0 {
				break
			}
			urls = append(urls, strings.TrimSpace(v[i+1:i+j]))
			v = v[i+j+1:]
		}
		if urls == nil {
			return nil
		}
		return urls
	}
	return nil
}

// rawHeaders is RFC 8621 §4.1.3's headers: every field, name and raw
// value, in order.
func rawHeaders(hdr []byte) []map[string]string {
	out := []map[string]string{}
	message.EachField(hdr, func(name, value []byte) bool {
		out = append(out, map[string]string{"name": string(name), "value": strings.ToValidUTF8(string(value), "\uFFFD")})
		return true
	})
	return out
}

// partContent returns a leaf part's bytes after transfer decoding, for
// the download of its blob.
func partContent(raw []byte, p *message.Part) []byte {
	body := raw[min(int(p.BodyStart), len(raw)):min(int(p.End), len(raw))]
	switch p.Encoding {
	case "base64":
		clean := bytes.Map(func(r rune) rune {
			if r == '\r' || r == '\n' || r == ' ' || r == '\t' {
				return -1
			}
			return r
		}, body)
		out := make([]byte, base64.StdEncoding.DecodedLen(len(clean)))
		n, _ := base64.StdEncoding.Decode(out, clean) // a broken tail still leaves the head
		return out[:n]
	case "quoted-printable":
		return message.DecodeText(p.Encoding, "", body)
	}
	return body
}

// findPart returns the leaf part of section partID.
func findPart(root *message.Part, partID string) *message.Part {
	if root.Type != "multipart" {
		if partID == "1" {
			return root
		}
		return nil
	}
	p := root
	for _, n := range strings.Split(partID, ".") {
		i, err := strconv.Atoi(n)
		if err != nil || i < 1 || i > len(p.Parts) {
			return nil
		}
		p = &p.Parts[i-1]
	}
	if p.Type == "multipart" {
		return nil
	}
	return p
}

// emailChanges is Email/changes (RFC 8621 §4.3).
func (s *Server) emailChanges(c *call) (any, error) {
	out, _, err := changes(s, c, mailstore.KindEmail, emailID)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// threadGet is Thread/get (RFC 8621 §3.1): every Email is its own
// Thread.
func (s *Server) threadGet(c *call) (any, error) {
	ids, _, err := s.getArgs(c, getSpec{all: []string{"id", "emailIds"}})
	if err != nil {
		return nil, err
	}
	if ids == nil {
		return nil, &methodError{Type: "requestTooLarge", Description: "Thread/get needs ids"}
	}
	state, err := s.store.AccountState(c.ctx, c.user.ID)
	if err != nil {
		return nil, err
	}
	emails, notFound, err := s.visibleEmails(c, ids, parseThread, threadID, mailstore.EmailOptions{})
	if err != nil {
		return nil, err
	}
	list := []any{}
	for _, e := range emails {
		list = append(list, map[string]any{"id": threadID(e.ID), "emailIds": []string{emailID(e.ID)}})
	}
	return map[string]any{"accountId": accountID(c.user.ID), "state": stateString(state.Email), "list": list, "notFound": notFound}, nil
}

// threadChanges is Thread/changes (RFC 8621 §3.2): a Thread is created
// and destroyed with its one Email and never otherwise changes; the
// Thread state is the Email state.
func (s *Server) threadChanges(c *call) (any, error) {
	out, _, err := changes(s, c, mailstore.KindEmail, threadID)
	if err != nil {
		return nil, err
	}
	out["updated"] = []string{}
	return out, nil
}
