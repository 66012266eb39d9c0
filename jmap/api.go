package jmap

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"pushmail/mailstore"
)

// RFC 8620 §3.6.1 request-level error types.
const (
	errUnknownCapability = "urn:ietf:params:jmap:error:unknownCapability"
	errNotJSON           = "urn:ietf:params:jmap:error:notJSON"
	errNotRequest        = "urn:ietf:params:jmap:error:notRequest"
	errLimit             = "urn:ietf:params:jmap:error:limit"
)

// request is RFC 8620 §3.3's Request object.
type request struct {
	Using       []string          `json:"using"`
	MethodCalls []json.RawMessage `json:"methodCalls"`
	CreatedIDs  map[string]string `json:"createdIds,omitempty"`
}

// invocation is one method call or response: [name, arguments, callId].
type invocation struct {
	Name   string
	Args   json.RawMessage
	CallID string
}

func (i invocation) MarshalJSON() ([]byte, error) {
	return json.Marshal([]any{i.Name, i.Args, i.CallID})
}

// call is one method call being run: the request it belongs to and the
// arguments after result references were resolved.
type call struct {
	ctx  context.Context
	user *user
	name string
	args map[string]json.RawMessage
	req  *apiRequest
}

// apiRequest is the state one request keeps across its calls.
type apiRequest struct {
	using     map[string]bool
	responses []invocation
	// created maps creation ids to the ids they got (RFC 8620 §5.3),
	// from the request's createdIds and this request's /set and
	// /import creations.
	created map[string]string
}

// methodError is a method-level error (RFC 8620 §3.6.2).
type methodError struct {
	Type        string `json:"type"`
	Description string `json:"description,omitempty"`
	// Arguments names the offending arguments (invalidArguments).
	Arguments []string `json:"arguments,omitempty"`
}

func (e *methodError) Error() string { return e.Type + ": " + e.Description }

func invalidArgs(desc string, args ...string) *methodError {
	return &methodError{Type: "invalidArguments", Description: desc, Arguments: args}
}

// method is one method's implementation: it returns the response
// arguments or a *methodError; any other error is serverFail.
type method struct {
	capability string
	run        func(s *Server, c *call) (any, error)
}

// methods are the methods this server runs, by name, with the
// capability a request must list in "using" to call each.
var methods = map[string]method{
	"Core/echo":            {capCore, func(_ *Server, c *call) (any, error) { return c.args, nil }},
	"Mailbox/get":          {capMail, (*Server).mailboxGet},
	"Mailbox/changes":      {capMail, (*Server).mailboxChanges},
	"Mailbox/query":        {capMail, (*Server).mailboxQuery},
	"Mailbox/queryChanges": {capMail, queryChangesUnsupported},
	"Mailbox/set":          {capMail, (*Server).mailboxSet},
	"Thread/get":           {capMail, (*Server).threadGet},
	"Thread/changes":       {capMail, (*Server).threadChanges},
	"Email/get":            {capMail, (*Server).emailGet},
	"Email/changes":        {capMail, (*Server).emailChanges},
	"Email/query":          {capMail, (*Server).emailQuery},
	"Email/queryChanges":   {capMail, queryChangesUnsupported},
	"Email/set":            {capMail, (*Server).emailSet},
	"Email/import":         {capMail, (*Server).emailImport},
	"SearchSnippet/get":    {capMail, (*Server).searchSnippetGet},
	"PushSubscription/get": {capCore, (*Server).pushSubscriptionGet},
	"PushSubscription/set": {capCore, (*Server).pushSubscriptionSet},
}

// accountless are the methods that take no accountId: Core/echo, and the
// push subscription methods (RFC 8620 §7.2.1: a subscription belongs to
// the user, not to an account).
var accountless = map[string]bool{"Core/echo": true, "PushSubscription/get": true, "PushSubscription/set": true}

// serveAPI answers POST /jmap/api (RFC 8620 §3).
func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request, u *user) {
	// RFC 8620 §3.6.1: a request over maxConcurrentRequests or
	// maxSizeRequest is a "limit" error naming the limit.
	if !s.acquire(s.requests, u.ID, s.limits.MaxConcurrentRequests) {
		problem(w, http.StatusTooManyRequests, errLimit, "Too many concurrent requests", map[string]any{"limit": "maxConcurrentRequests"})
		return
	}
	defer s.release(s.requests, u.ID)
	body, err := io.ReadAll(io.LimitReader(r.Body, s.limits.MaxSizeRequest+1))
	if err != nil {
		problem(w, http.StatusBadRequest, errNotJSON, "Request body not read", nil)
		return
	}
	if int64(len(body)) > s.limits.MaxSizeRequest {
		problem(w, http.StatusRequestEntityTooLarge, errLimit, "Request larger than maxSizeRequest", map[string]any{"limit": "maxSizeRequest"})
		return
	}
	if !utf8.Valid(body) || !json.Valid(body) {
		problem(w, http.StatusBadRequest, errNotJSON, "The request is not valid UTF-8 JSON", nil)
		return
	}
	var req request
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&req); err != nil || req.Using == nil || req.MethodCalls == nil {
		problem(w, http.StatusBadRequest, errNotRequest, "The body is not a JMAP Request object", nil)
		return
	}
	using := map[string]bool{}
	for _, c := range req.Using {
		if c != capCore && c != capMail {
			problem(w, http.StatusBadRequest, errUnknownCapability, "Unknown capability "+strconv.Quote(c), nil)
			return
		}
		using[c] = true
	}
	if len(req.MethodCalls) > s.limits.MaxCallsInRequest {
		problem(w, http.StatusBadRequest, errLimit, "More method calls than maxCallsInRequest", map[string]any{"limit": "maxCallsInRequest"})
		return
	}
	calls := make([]invocation, len(req.MethodCalls))
	for i, raw := range req.MethodCalls {
		var parts []json.RawMessage
		if err := json.Unmarshal(raw, &parts); err != nil || len(parts) != 3 {
			problem(w, http.StatusBadRequest, errNotRequest, "A method call is not [name, arguments, callId]", nil)
			return
		}
		if json.Unmarshal(parts[0], &calls[i].Name) != nil || json.Unmarshal(parts[2], &calls[i].CallID) != nil ||
			len(parts[1]) == 0 || parts[1][0] != '{' {
			problem(w, http.StatusBadRequest, errNotRequest, "A method call is not [name, arguments, callId]", nil)
			return
		}
		calls[i].Args = parts[1]
	}
	ar := &apiRequest{using: using, created: map[string]string{}}
	for k, v := range req.CreatedIDs {
		ar.created[k] = v
	}
	for _, inv := range calls {
		s.runCall(r.Context(), u, ar, inv)
	}
	resp := map[string]any{
		"methodResponses": ar.responses,
		"sessionState":    s.sessionState(u),
	}
	if req.CreatedIDs != nil {
		resp["createdIds"] = ar.created
	}
	writeJSON(w, http.StatusOK, resp)
}

// runCall runs one method call and appends its response (or error).
func (s *Server) runCall(ctx context.Context, u *user, ar *apiRequest, inv invocation) {
	fail := func(e *methodError) {
		js, _ := json.Marshal(e) // a struct of strings always encodes
		ar.responses = append(ar.responses, invocation{"error", js, inv.CallID})
	}
	m, ok := methods[inv.Name]
	if !ok || !ar.using[m.capability] {
		// RFC 8620 §3.6.2: unknownMethod, also for a method whose
		// capability the request did not list in "using".
		fail(&methodError{Type: "unknownMethod", Description: "Unknown method " + strconv.Quote(inv.Name)})
		return
	}
	var args map[string]json.RawMessage
	if err := json.Unmarshal(inv.Args, &args); err != nil {
		fail(invalidArgs("Arguments are not an object"))
		return
	}
	if e := ar.resolveReferences(args); e != nil {
		fail(e)
		return
	}
	c := &call{ctx: ctx, user: u, name: inv.Name, args: args, req: ar}
	if !accountless[inv.Name] {
		if e := c.checkAccount(s); e != nil {
			fail(e)
			return
		}
	}
	res, err := m.run(s, c)
	if err != nil {
		var me *methodError
		if errors.As(err, &me) {
			fail(me)
			return
		}
		s.log.Error("method failed", "method", inv.Name, "user", u.Address, "err", err)
		fail(&methodError{Type: "serverFail", Description: "Internal error"})
		return
	}
	js, err := json.Marshal(res)
	if err != nil {
		s.log.Error("method response not encoded", "method", inv.Name, "err", err)
		fail(&methodError{Type: "serverFail", Description: "Internal error"})
		return
	}
	ar.responses = append(ar.responses, invocation{inv.Name, js, inv.CallID})
}

// checkAccount checks the accountId argument every Mail method takes:
// the user's own, or forbidden for another user's existing account
// (RFC 8620 §3.6.2 "forbidden": the action would violate an ACL), or
// accountNotFound.
func (c *call) checkAccount(s *Server) *methodError {
	raw, ok := c.args["accountId"]
	if !ok {
		return invalidArgs("accountId is required", "accountId")
	}
	var id string
	if json.Unmarshal(raw, &id) != nil {
		return invalidArgs("accountId must be a string", "accountId")
	}
	if id == accountID(c.user.ID) {
		return nil
	}
	if other, ok := parseAccount(id); ok {
		if _, err := s.store.AccountState(c.ctx, other); err == nil {
			return &methodError{Type: "forbidden", Description: "The account is not yours"}
		}
	}
	return &methodError{Type: "accountNotFound", Description: "No account " + strconv.Quote(id)}
}

// resultReference is RFC 8620 §3.7's ResultReference.
type resultReference struct {
	ResultOf string `json:"resultOf"`
	Name     string `json:"name"`
	Path     string `json:"path"`
}

// resolveReferences replaces each "#name" argument by the value its
// ResultReference points at (RFC 8620 §3.7).
func (ar *apiRequest) resolveReferences(args map[string]json.RawMessage) *methodError {
	for key, raw := range args {
		if !strings.HasPrefix(key, "#") {
			continue
		}
		name := key[1:]
		if _, both := args[name]; both {
			return invalidArgs("Both "+strconv.Quote(name)+" and "+strconv.Quote(key), name)
		}
		var ref resultReference
		if err := json.Unmarshal(raw, &ref); err != nil || ref.ResultOf == "" || ref.Name == "" {
			return &methodError{Type: "invalidResultReference", Description: "Malformed ResultReference in " + strconv.Quote(key)}
		}
		var target *invocation
		for i := range ar.responses {
			if ar.responses[i].CallID == ref.ResultOf {
				target = &ar.responses[i]
				break
			}
		}
		if target == nil || target.Name != ref.Name {
			return &methodError{Type: "invalidResultReference", Description: "No " + ref.Name + " response with callId " + strconv.Quote(ref.ResultOf)}
		}
		var doc any
		if err := json.Unmarshal(target.Args, &doc); err != nil {
			return &methodError{Type: "invalidResultReference", Description: "Referenced response unreadable"}
		}
		v, ok := evalPointer(doc, ref.Path)
		if !ok {
			return &methodError{Type: "invalidResultReference", Description: "Path " + strconv.Quote(ref.Path) + " does not resolve"}
		}
		js, err := json.Marshal(v)
		if err != nil {
			return &methodError{Type: "invalidResultReference", Description: "Referenced value unreadable"}
		}
		delete(args, key)
		args[name] = js
	}
	return nil
}

// evalPointer evaluates a JSON Pointer (RFC 6901) with RFC 8620 §3.7's
// extension: "*" on an array applies the rest of the path to each
// element and collects the results, flattening those that are arrays.
func evalPointer(doc any, path string) (any, bool) {
	if path == "" {
		return doc, true
	}
	if !strings.HasPrefix(path, "/") {
		return nil, false
	}
	tokens := strings.Split(path[1:], "/")
	for i, t := range tokens {
		tokens[i] = strings.ReplaceAll(strings.ReplaceAll(t, "~1", "/"), "~0", "~")
	}
	return evalTokens(doc, tokens)
}

func evalTokens(doc any, tokens []string) (any, bool) {
	for i, t := range tokens {
		switch v := doc.(type) {
		case map[string]any:
			next, ok := v[t]
			if !ok {
				return nil, false
			}
			doc = next
		case []any:
			if t == "*" {
				out := []any{}
				for _, el := range v {
					r, ok := evalTokens(el, tokens[i+1:])
					if !ok {
						return nil, false
					}
					if arr, isArr := r.([]any); isArr {
						out = append(out, arr...)
					} else {
						out = append(out, r)
					}
				}
				return out, true
			}
			n, err := strconv.Atoi(t)
			if err != nil || n < 0 || n >= len(v) || (len(t) > 1 && t[0] == '0') {
				return nil, false
			}
			doc = v[n]
		default:
			return nil, false
		}
	}
	return doc, true
}

// arg decodes argument name into v when present; absent or null leaves
// v as it is. A value of the wrong type is invalidArguments.
func (c *call) arg(name string, v any) error {
	raw, ok := c.args[name]
	if !ok || string(raw) == "null" {
		return nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return invalidArgs("Argument "+strconv.Quote(name)+" has the wrong type", name)
	}
	return nil
}

// has reports whether argument name is present and not null.
func (c *call) has(name string) bool {
	raw, ok := c.args[name]
	return ok && string(raw) != "null"
}

// known fails with invalidArguments when an argument is not in names:
// RFC 8620 §3.6.2, "one of the arguments is of the wrong type or
// otherwise invalid", which an unknown argument is.
func (c *call) known(names ...string) error {
	for k := range c.args {
		ok := false
		for _, n := range names {
			if k == n {
				ok = true
				break
			}
		}
		if !ok {
			return invalidArgs("Unknown argument "+strconv.Quote(k), k)
		}
	}
	return nil
}

// storeError maps a mailstore error to a method error where JMAP has
// one; anything else is the caller's serverFail. The one place the
// store's errors become JMAP's (RFC 8620 §3.6.2, §5.3 SetError).
func storeError(err error) error {
	switch {
	case errors.Is(err, mailstore.ErrCannotCalculateChanges):
		return &methodError{Type: "cannotCalculateChanges", Description: "The state is too old or unknown; resynchronise"}
	case errors.Is(err, mailstore.ErrStorageFull):
		return &methodError{Type: "serverUnavailable", Description: "Mail storage full; try later"}
	}
	return err
}

// setError is RFC 8620 §5.3's SetError.
type setError struct {
	Type        string   `json:"type"`
	Description string   `json:"description,omitempty"`
	Properties  []string `json:"properties,omitempty"`
	ExistingID  string   `json:"existingId,omitempty"`
}

// setErrorOf maps a mailstore error of one object's create, update or
// destroy to a SetError; ok false for an error that is the server's.
func setErrorOf(err error) (*setError, bool) {
	switch {
	case errors.Is(err, mailstore.ErrNoSuchEmail):
		return &setError{Type: "notFound"}, true
	case errors.Is(err, mailstore.ErrNoSuchMailbox):
		return &setError{Type: "notFound", Description: "No such mailbox"}, true
	case errors.Is(err, mailstore.ErrMailboxExists):
		return &setError{Type: "invalidProperties", Description: "A mailbox with that name exists", Properties: []string{"name"}}, true
	case errors.Is(err, mailstore.ErrInvalidName):
		return &setError{Type: "invalidProperties", Description: "Invalid mailbox name", Properties: []string{"name"}}, true
	case errors.Is(err, mailstore.ErrProtected):
		return &setError{Type: "forbidden", Description: "Not allowed on this mailbox"}, true
	case errors.Is(err, mailstore.ErrOverQuota):
		return &setError{Type: "overQuota"}, true
	case errors.Is(err, mailstore.ErrTooBig):
		return &setError{Type: "tooLarge"}, true
	case errors.Is(err, mailstore.ErrInvalidFlag):
		return &setError{Type: "invalidProperties", Description: "Invalid keyword", Properties: []string{"keywords"}}, true
	case errors.Is(err, mailstore.ErrStorageFull):
		return &setError{Type: "overQuota", Description: "Mail storage full"}, true
	}
	return nil, false
}

// queryChangesUnsupported answers Mailbox/queryChanges and
// Email/queryChanges: RFC 8620 §5.6 lets a server that cannot compute
// the changes to a query answer cannotCalculateChanges, and the client
// then runs the query again.
func queryChangesUnsupported(_ *Server, c *call) (any, error) {
	return nil, &methodError{Type: "cannotCalculateChanges", Description: "Query changes are not kept; run the query again"}
}
