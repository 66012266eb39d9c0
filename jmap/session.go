package jmap

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"pushmail/mailstore"
)

// The capabilities this server speaks (RFC 8620 §2, RFC 8621 §1.3.1).
const (
	capCore = "urn:ietf:params:jmap:core"
	capMail = "urn:ietf:params:jmap:mail"
)

// Ids on the wire (RFC 8620 §1.2: 1 to 255 characters of the URL-safe
// base64 alphabet): a letter for the kind, then the store's integer.
func accountID(u mailstore.UserID) string    { return "A" + strconv.FormatInt(int64(u), 10) }
func mailboxID(m mailstore.MailboxID) string { return "M" + strconv.FormatInt(int64(m), 10) }
func emailID(e mailstore.EmailID) string     { return "E" + strconv.FormatInt(int64(e), 10) }
func threadID(e mailstore.EmailID) string    { return "T" + strconv.FormatInt(int64(e), 10) }
func emailBlobID(e mailstore.EmailID) string { return "G" + strconv.FormatInt(int64(e), 10) }
func stateString(seq uint64) string          { return strconv.FormatUint(seq, 10) }
func parseState(s string) (uint64, bool) {
	n, err := strconv.ParseUint(s, 10, 64)
	return n, err == nil
}
func parseAccount(s string) (mailstore.UserID, bool) {
	n, ok := parseID(s, 'A')
	return mailstore.UserID(n), ok
}
func parseMailbox(s string) (mailstore.MailboxID, bool) {
	n, ok := parseID(s, 'M')
	return mailstore.MailboxID(n), ok
}
func parseEmail(s string) (mailstore.EmailID, bool) {
	n, ok := parseID(s, 'E')
	return mailstore.EmailID(n), ok
}
func parseThread(s string) (mailstore.EmailID, bool) {
	n, ok := parseID(s, 'T')
	return mailstore.EmailID(n), ok
}

func parseID(s string, kind byte) (int64, bool) {
	if len(s) < 2 || s[0] != kind || s[1] == '0' || s[1] == '+' || s[1] == '-' {
		return 0, false
	}
	n, err := strconv.ParseInt(s[1:], 10, 64)
	return n, err == nil && n > 0
}

// baseURL is the scheme and host the client reached us at, for the
// session's absolute URLs.
func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// sessionState identifies the session object's content: it changes only
// with the user's address (the account's name) or the limits, which a
// restart may change.
func (s *Server) sessionState(u *user) string {
	h := uint32(2166136261)
	for _, c := range []byte(u.Address + "|" + strconv.FormatInt(s.limits.MaxSizeRequest, 10) + "|" + strconv.Itoa(s.limits.MaxCallsInRequest)) {
		h = (h ^ uint32(c)) * 16777619
	}
	return strconv.FormatUint(uint64(h), 36)
}

// serveSession answers the session resource (RFC 8620 §2).
func (s *Server) serveSession(w http.ResponseWriter, r *http.Request, u *user) {
	base := baseURL(r)
	acct := accountID(u.ID)
	l := s.limits
	session := map[string]any{
		"capabilities": map[string]any{
			capCore: map[string]any{
				"maxSizeUpload":         l.MaxSizeUpload,
				"maxConcurrentUpload":   l.MaxConcurrentUpload,
				"maxSizeRequest":        l.MaxSizeRequest,
				"maxConcurrentRequests": l.MaxConcurrentRequests,
				"maxCallsInRequest":     l.MaxCallsInRequest,
				"maxObjectsInGet":       l.MaxObjectsInGet,
				"maxObjectsInSet":       l.MaxObjectsInSet,
				// RFC 8620 §2: collations for string comparison in
				// /query; RFC 4790's i;ascii-casemap is what sorting
				// by from and subject uses.
				"collationAlgorithms": []string{"i;ascii-casemap"},
			},
			// RFC 8621 §1.3.1: an empty object in the session.
			capMail: map[string]any{},
		},
		"accounts": map[string]any{
			acct: map[string]any{
				"name":       u.Address,
				"isPersonal": true,
				"isReadOnly": false,
				"accountCapabilities": map[string]any{
					capCore: map[string]any{},
					capMail: map[string]any{
						"maxMailboxesPerEmail":       nil,
						"maxMailboxDepth":            nil,
						"maxSizeMailboxName":         mailstore.MaxMailboxNameLen,
						"maxSizeAttachmentsPerEmail": l.MaxSizeUpload,
						"emailQuerySortOptions":      emailSortOptions,
						"mayCreateTopLevelMailbox":   true,
					},
				},
			},
		},
		"primaryAccounts": map[string]string{capCore: acct, capMail: acct},
		"username":        u.Address,
		"apiUrl":          base + "/jmap/api",
		"downloadUrl":     base + "/jmap/download/{accountId}/{blobId}/{name}?accept={type}",
		"uploadUrl":       base + "/jmap/upload/{accountId}/",
		"eventSourceUrl":  base + "/jmap/eventsource?types={types}&closeafter={closeafter}&ping={ping}",
		"state":           s.sessionState(u),
	}
	if s.opts.VAPIDPublicKey != "" {
		session["capabilities"].(map[string]any)[capWebPushVAPID] = map[string]any{"applicationServerKey": s.opts.VAPIDPublicKey}
	}
	writeJSON(w, http.StatusOK, session)
}

// writeJSON writes v as the response.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache, no-store, must-revalidate")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v) // a write error means the client went away; nothing to tell it
}

// problem writes an RFC 7807 problem details response (RFC 8620 §3.6.1:
// request-level errors).
func problem(w http.ResponseWriter, status int, typ, detail string, extra map[string]any) {
	body := map[string]any{"type": typ, "status": status, "detail": detail}
	for k, v := range extra {
		body[k] = v
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body) // the client may be gone; nothing to tell it
}

// splitName splits a store mailbox name into its parent's name ("" at
// the top) and its own.
func splitName(full string) (parent, name string) {
	i := strings.LastIndex(full, mailstore.Separator)
	if i < 0 {
		return "", full
	}
	return full[:i], full[i+len(mailstore.Separator):]
}
