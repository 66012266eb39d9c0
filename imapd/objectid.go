package imapd

import (
	"strconv"

	"pushmail/mailstore"
)

// OBJECTID (RFC 8474): the ids IMAP shows are the ones the HTTP API
// (package jmap, jmap/session.go) shows for the same objects, so that a
// client using both sees one mailbox or message under one id:
//
//   - MAILBOXID (§4) is "M" and the mailbox's id. Mailbox ids are never
//     handed out twice (mailstore schema version 3) and RENAME keeps the
//     row, so the id follows the mailbox through RENAME (§4: "MUST NOT
//     change"), as a renamed INBOX leaves its id with INBOX.
//   - EMAILID (§5.1) is "E" and the message's email id, its body's id
//     (mailstore.Message.Email): COPY and MOVE keep the body, so the copy
//     has the same EMAILID (§5.1: "the same EMAILID if the message
//     content is the same"), and body ids are never reused.
//   - THREADID (§5.2) is "T" and the email id: the store keeps no
//     threads, and JMAP makes every Email its own Thread (RFC 8621 §3
//     allows it), so IMAP does the same rather than answer NIL, which
//     would hide from a client that the ids are the JMAP ones.
//
// All three are objectid (§7): 1*255(ALPHA / DIGIT / "_" / "-").
// cmd/pushmail's TestObjectIDsMatchJMAP checks that both front ends
// agree.

// mailboxObjectID is a mailbox's MAILBOXID.
func mailboxObjectID(id mailstore.MailboxID) string {
	return "M" + strconv.FormatInt(int64(id), 10)
}

// emailObjectID is a message's EMAILID.
func emailObjectID(id mailstore.EmailID) string {
	return "E" + strconv.FormatInt(int64(id), 10)
}

// threadObjectID is a message's THREADID.
func threadObjectID(id mailstore.EmailID) string {
	return "T" + strconv.FormatInt(int64(id), 10)
}

// parseObjectID reads an EMAILID or THREADID of the kind ('E' or 'T'):
// the kind, then a positive decimal number in canonical form. Anything
// else names no message of this server.
func parseObjectID(s string, kind byte) (mailstore.EmailID, bool) {
	if len(s) < 2 || s[0] != kind || s[1] < '1' || s[1] > '9' {
		return 0, false
	}
	n, err := strconv.ParseInt(s[1:], 10, 64)
	if err != nil {
		return 0, false
	}
	return mailstore.EmailID(n), true
}
