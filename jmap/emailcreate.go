package jmap

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net/mail"
	"slices"
	"strings"
	"time"

	"pushmail/mailstore"
)

// Email/set create (RFC 8621 §4.6): the server writes the RFC 5322
// message from the Email's properties, then stores it as Email/import
// does. Supported: mailboxIds, keywords, receivedAt; the convenience
// header properties from, to, cc, bcc, replyTo, sender (addresses),
// subject, sentAt, messageId, inReplyTo, references; and the body as
// textBody and/or htmlBody, one part each, with its value in
// bodyValues. bodyStructure, attachments and header:… properties are
// refused (invalidProperties): they are not written.

// emailCreate is the decoded creation object.
type emailCreate struct {
	MailboxIDs map[string]bool            `json:"mailboxIds"`
	Keywords   map[string]bool            `json:"keywords"`
	ReceivedAt *string                    `json:"receivedAt"`
	From       []emailAddress             `json:"from"`
	To         []emailAddress             `json:"to"`
	Cc         []emailAddress             `json:"cc"`
	Bcc        []emailAddress             `json:"bcc"`
	ReplyTo    []emailAddress             `json:"replyTo"`
	Sender     []emailAddress             `json:"sender"`
	Subject    *string                    `json:"subject"`
	SentAt     *string                    `json:"sentAt"`
	MessageID  []string                   `json:"messageId"`
	InReplyTo  []string                   `json:"inReplyTo"`
	References []string                   `json:"references"`
	TextBody   []createPart               `json:"textBody"`
	HTMLBody   []createPart               `json:"htmlBody"`
	BodyValues map[string]createBodyValue `json:"bodyValues"`
}

type createPart struct {
	PartID string `json:"partId"`
	Type   string `json:"type"`
}

type createBodyValue struct {
	Value string `json:"value"`
}

var createProperties = map[string]bool{"mailboxIds": true, "keywords": true, "receivedAt": true, "from": true, "to": true,
	"cc": true, "bcc": true, "replyTo": true, "sender": true, "subject": true, "sentAt": true, "messageId": true,
	"inReplyTo": true, "references": true, "textBody": true, "htmlBody": true, "bodyValues": true}

// buildMessage writes the message an Email/set creation describes; a
// *setError for what it cannot write.
func buildMessage(raw json.RawMessage, now time.Time) (*emailCreate, []byte, *setError) {
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(raw, &keys); err != nil {
		return nil, nil, &setError{Type: "invalidProperties", Description: "Not an object"}
	}
	for k := range keys {
		if !createProperties[k] {
			return nil, nil, &setError{Type: "invalidProperties", Properties: []string{k}, Description: "Not supported in a creation"}
		}
	}
	var ec emailCreate
	if err := json.Unmarshal(raw, &ec); err != nil {
		return nil, nil, &setError{Type: "invalidProperties", Description: "A property has the wrong type"}
	}
	if len(ec.TextBody) > 1 || len(ec.HTMLBody) > 1 {
		return nil, nil, &setError{Type: "invalidProperties", Properties: []string{"textBody"}, Description: "At most one text and one HTML part"}
	}
	var b bytes.Buffer
	header := func(name, value string) { fmt.Fprintf(&b, "%s: %s\r\n", name, value) }
	addrs := func(name string, list []emailAddress) *setError {
		if list == nil {
			return nil
		}
		out := make([]string, 0, len(list))
		for _, a := range list {
			if _, err := mail.ParseAddress("<" + a.Email + ">"); err != nil {
				return &setError{Type: "invalidProperties", Properties: []string{name}, Description: "Invalid address " + a.Email}
			}
			ma := mail.Address{Address: a.Email}
			if a.Name != nil {
				ma.Name = *a.Name
			}
			out = append(out, ma.String())
		}
		header(map[string]string{"from": "From", "sender": "Sender", "replyTo": "Reply-To", "to": "To", "cc": "Cc", "bcc": "Bcc"}[name], strings.Join(out, ", "))
		return nil
	}
	date := now
	if ec.SentAt != nil {
		t, err := time.Parse(time.RFC3339, *ec.SentAt)
		if err != nil {
			return nil, nil, &setError{Type: "invalidProperties", Properties: []string{"sentAt"}}
		}
		date = t
	}
	header("Date", date.Format("Mon, 2 Jan 2006 15:04:05 -0700"))
	for _, f := range []struct {
		name string
		list []emailAddress
	}{{"from", ec.From}, {"sender", ec.Sender}, {"replyTo", ec.ReplyTo}, {"to", ec.To}, {"cc", ec.Cc}, {"bcc", ec.Bcc}} {
		if se := addrs(f.name, f.list); se != nil {
			return nil, nil, se
		}
	}
	if ec.Subject != nil {
		if strings.ContainsAny(*ec.Subject, "\r\n") {
			return nil, nil, &setError{Type: "invalidProperties", Properties: []string{"subject"}}
		}
		header("Subject", mime.QEncoding.Encode("utf-8", *ec.Subject))
	}
	ids := func(name, field string, list []string) *setError {
		if list == nil {
			return nil
		}
		out := make([]string, 0, len(list))
		for _, id := range list {
			if id == "" || strings.ContainsAny(id, "<> \t\r\n") {
				return &setError{Type: "invalidProperties", Properties: []string{name}}
			}
			out = append(out, "<"+id+">")
		}
		header(field, strings.Join(out, " "))
		return nil
	}
	if ec.MessageID == nil {
		// RFC 5322 §3.6.4: every message SHOULD have a Message-ID.
		var r [12]byte
		if _, err := rand.Read(r[:]); err != nil {
			return nil, nil, &setError{Type: "serverFail"}
		}
		ec.MessageID = []string{hex.EncodeToString(r[:]) + "@pushmail"}
	}
	for _, f := range []struct {
		name, field string
		list        []string
	}{{"messageId", "Message-ID", ec.MessageID}, {"inReplyTo", "In-Reply-To", ec.InReplyTo}, {"references", "References", ec.References}} {
		if se := ids(f.name, f.field, f.list); se != nil {
			return nil, nil, se
		}
	}
	header("MIME-Version", "1.0")
	value := func(p createPart, prop string) (string, *setError) {
		v, ok := ec.BodyValues[p.PartID]
		if !ok {
			return "", &setError{Type: "invalidProperties", Properties: []string{prop}, Description: "No bodyValues entry for part " + p.PartID}
		}
		return v.Value, nil
	}
	writePart := func(w *bytes.Buffer, typ, text string) {
		fmt.Fprintf(w, "Content-Type: %s; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n", typ)
		qp := quotedprintable.NewWriter(w)
		qp.Write([]byte(strings.ReplaceAll(strings.ReplaceAll(text, "\r\n", "\n"), "\n", "\r\n"))) // a bytes.Buffer does not fail
		qp.Close()
		w.WriteString("\r\n")
	}
	var text, html *string
	if len(ec.TextBody) == 1 {
		v, se := value(ec.TextBody[0], "textBody")
		if se != nil {
			return nil, nil, se
		}
		text = &v
	}
	if len(ec.HTMLBody) == 1 {
		v, se := value(ec.HTMLBody[0], "htmlBody")
		if se != nil {
			return nil, nil, se
		}
		html = &v
	}
	switch {
	case text != nil && html != nil:
		var r [12]byte
		if _, err := rand.Read(r[:]); err != nil {
			return nil, nil, &setError{Type: "serverFail"}
		}
		boundary := "=_" + hex.EncodeToString(r[:])
		header("Content-Type", `multipart/alternative; boundary="`+boundary+`"`)
		b.WriteString("\r\n")
		for _, p := range []struct{ typ, v string }{{"text/plain", *text}, {"text/html", *html}} {
			b.WriteString("--" + boundary + "\r\n")
			writePart(&b, p.typ, p.v)
		}
		b.WriteString("--" + boundary + "--\r\n")
	case html != nil:
		writePart(&b, "text/html", *html)
	case text != nil:
		writePart(&b, "text/plain", *text)
	default:
		writePart(&b, "text/plain", "")
	}
	return &ec, b.Bytes(), nil
}

// storeNewEmail stores raw as a new Email of the call's account in the
// mailboxes (ids or creation references) with the keywords and
// receivedAt (nil: now): Email/import's and Email/set create's last step.
func (s *Server) storeNewEmail(c *call, raw []byte, mailboxIDs, keywords map[string]bool, receivedAt *string) (map[string]any, *setError, error) {
	var mbs []mailstore.MailboxID
	for ref, v := range mailboxIDs {
		mb, ok := c.resolveMailboxRef(ref)
		if !v || !ok {
			return nil, &setError{Type: "invalidProperties", Properties: []string{"mailboxIds"}}, nil
		}
		mbs = append(mbs, mb)
	}
	if len(mbs) == 0 {
		return nil, &setError{Type: "invalidProperties", Properties: []string{"mailboxIds"}, Description: "An email must be in a mailbox"}, nil
	}
	slices.Sort(mbs)
	kw := map[string]bool{}
	for k, v := range keywords {
		if !v || !validKeyword(k) {
			return nil, &setError{Type: "invalidProperties", Properties: []string{"keywords"}}, nil
		}
		kw[strings.ToLower(k)] = true
	}
	var date time.Time
	if receivedAt != nil {
		var err error
		if date, err = time.Parse(time.RFC3339, *receivedAt); err != nil {
			return nil, &setError{Type: "invalidProperties", Properties: []string{"receivedAt"}}, nil
		}
	}
	id, err := s.store.ImportEmail(c.ctx, c.user.ID, raw, mbs, flagsOf(kw), date)
	if err != nil {
		if se, ok := setErrorOf(err); ok {
			if se.Type == "notFound" {
				se = &setError{Type: "invalidProperties", Properties: []string{"mailboxIds"}, Description: "No such mailbox"}
			}
			return nil, se, nil
		}
		return nil, nil, err
	}
	return map[string]any{"id": emailID(id), "blobId": emailBlobID(id), "threadId": threadID(id), "size": len(raw)}, nil, nil
}
