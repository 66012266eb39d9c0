package jmap

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net"
	"net/url"
	"slices"
	"strconv"
	"time"

	"pushmail/mailstore"
	"pushmail/wakeup"
)

// Push subscriptions (RFC 8620 §7.2): a client names a push service URL
// and, optionally, keys; package wakeup sends the subscription a
// PushVerification, then, once the client has set the code it got,
// the user's StateChanges (encrypted and VAPID-signed). These methods only
// keep the objects in the store; the store's event tells the engine.

// capWebPushVAPID is RFC 9749's capability: the server's VAPID key, for
// a client to subscribe with (PushManager.subscribe's
// applicationServerKey).
const capWebPushVAPID = "urn:ietf:params:jmap:webpush-vapid"

// maxPushExpiry bounds a subscription's life; a client renews it (RFC
// 8620 §7.2: the server MAY set a shorter expiry than asked for).
const maxPushExpiry = 7 * 24 * time.Hour

// pushSubscriptionProps are the properties /get returns by default. RFC
// 8620 §7.2.1: url and keys are never returned, so that a leaked session
// does not leak where pushes go.
var pushSubscriptionProps = []string{"id", "deviceClientId", "verificationCode", "expires", "types"}

// pushTypesAllowed are the data types a subscription may ask for.
var pushTypesAllowed = []string{"Mailbox", "Email", "Thread", "EmailDelivery"}

// States returns a user's account id and current states by data type, as
// the event stream reports them: package wakeup's StateFunc.
func (s *Server) States(ctx context.Context, u mailstore.UserID) (string, map[string]string, error) {
	st, err := s.store.AccountState(ctx, u)
	if err != nil {
		return "", nil, err
	}
	return accountID(u), map[string]string{"Email": stateString(st.Email), "Thread": stateString(st.Email),
		"Mailbox": stateString(st.Mailbox)}, nil
}

func (s *Server) pushSubscriptionGet(c *call) (any, error) {
	if err := c.known("ids", "properties"); err != nil {
		return nil, err
	}
	props := pushSubscriptionProps
	if c.has("properties") {
		props = nil
		if err := c.arg("properties", &props); err != nil {
			return nil, err
		}
		for _, p := range props {
			if p == "url" || p == "keys" {
				return nil, &methodError{Type: "forbidden", Description: "url and keys are not returned (RFC 8620 §7.2.1)"}
			}
			if !slices.Contains(pushSubscriptionProps, p) {
				return nil, invalidArgs("Unknown property "+strconv.Quote(p), "properties")
			}
		}
	}
	var ids []string
	if err := c.arg("ids", &ids); err != nil {
		return nil, err
	}
	if c.has("ids") && len(ids) > s.limits.MaxObjectsInGet {
		return nil, &methodError{Type: "requestTooLarge", Description: "More ids than maxObjectsInGet"}
	}
	subs, err := s.store.PushSubscriptions(c.ctx, c.user.ID)
	if err != nil {
		return nil, err
	}
	byID := map[string]mailstore.PushSubscription{}
	for _, p := range subs {
		byID[wakeup.SubscriptionID(p.ID)] = p
	}
	list, notFound := []any{}, []string{}
	render := func(p mailstore.PushSubscription) map[string]any {
		out := map[string]any{"id": wakeup.SubscriptionID(p.ID)}
		for _, prop := range props {
			switch prop {
			case "deviceClientId":
				out[prop] = p.DeviceClientID
			case "verificationCode":
				out[prop] = nullable(p.VerificationCode, p.VerificationCode != "")
			case "expires":
				out[prop] = p.Expires.UTC().Format(time.RFC3339)
			case "types":
				out[prop] = nullable(p.Types, p.Types != nil)
			}
		}
		return out
	}
	if !c.has("ids") {
		for _, p := range subs {
			list = append(list, render(p))
		}
	} else {
		for _, id := range ids {
			if p, ok := byID[id]; ok {
				list = append(list, render(p))
			} else {
				notFound = append(notFound, id)
			}
		}
	}
	return map[string]any{"list": list, "notFound": notFound}, nil
}

// pushSubscriptionCreate is one create's arguments.
type pushSubscriptionCreate struct {
	DeviceClientID   string  `json:"deviceClientId"`
	URL              string  `json:"url"`
	Keys             *pkeys  `json:"keys"`
	VerificationCode *string `json:"verificationCode"`
	Expires          *string `json:"expires"`
	Types            *[]string
}

type pkeys struct {
	P256DH string `json:"p256dh"`
	Auth   string `json:"auth"`
}

func (s *Server) pushSubscriptionSet(c *call) (any, error) {
	var create map[string]map[string]json.RawMessage
	var update map[string]map[string]json.RawMessage
	var destroy []string
	// RFC 8620 §7.2.2: no accountId, no ifInState, no states.
	op, err := s.openSet(c, crudSpec(noState, &create, &update, &destroy))
	if err != nil {
		return nil, err
	}
	for cid, raw := range create {
		obj, serr := parsePushCreate(raw)
		if serr != nil {
			op.notCreated[cid] = serr
			continue
		}
		sub := mailstore.PushSubscription{User: c.user.ID, DeviceClientID: obj.DeviceClientID, URL: obj.URL,
			Code: randomCode(), Expires: clampExpiry(obj.Expires)}
		if obj.Keys != nil {
			sub.P256DH, sub.Auth = obj.Keys.P256DH, obj.Keys.Auth
		}
		if obj.Types != nil {
			sub.Types = *obj.Types
		}
		id, err := s.store.CreatePushSubscription(c.ctx, sub)
		if errors.Is(err, mailstore.ErrTooManyPushSubscriptions) {
			op.notCreated[cid] = &setError{Type: "overQuota", Description: "Too many push subscriptions"}
			continue
		}
		if err != nil {
			return nil, err
		}
		op.create(cid, map[string]any{"id": wakeup.SubscriptionID(id), "expires": sub.Expires.UTC().Format(time.RFC3339)},
			wakeup.SubscriptionID(id))
	}
	for id, patch := range update {
		n, ok := wakeup.ParseSubscriptionID(id)
		if !ok {
			op.notUpdated[id] = &setError{Type: "notFound"}
			continue
		}
		sub, err := s.store.PushSubscription(c.ctx, c.user.ID, n)
		if errors.Is(err, mailstore.ErrNoSuchPushSubscription) {
			op.notUpdated[id] = &setError{Type: "notFound"}
			continue
		}
		if err != nil {
			return nil, err
		}
		var changed map[string]any
		if serr := applyPushPatch(&sub, patch); serr != nil {
			op.notUpdated[id] = serr
			continue
		}
		if _, ok := patch["expires"]; ok {
			changed = map[string]any{"expires": sub.Expires.UTC().Format(time.RFC3339)}
		}
		if err := s.store.UpdatePushSubscription(c.ctx, sub); err != nil {
			if errors.Is(err, mailstore.ErrNoSuchPushSubscription) {
				op.notUpdated[id] = &setError{Type: "notFound"}
				continue
			}
			return nil, err
		}
		op.updated[id] = changed
	}
	for _, id := range destroy {
		n, ok := wakeup.ParseSubscriptionID(id)
		if !ok {
			op.notDestroyed[id] = &setError{Type: "notFound"}
			continue
		}
		err := s.store.DestroyPushSubscription(c.ctx, c.user.ID, n)
		if errors.Is(err, mailstore.ErrNoSuchPushSubscription) {
			op.notDestroyed[id] = &setError{Type: "notFound"}
			continue
		}
		if err != nil {
			return nil, err
		}
		op.destroyed = append(op.destroyed, id)
	}
	return op.response(setFields...)
}

// parsePushCreate checks a create's properties (RFC 8620 §7.2).
func parsePushCreate(raw map[string]json.RawMessage) (*pushSubscriptionCreate, *setError) {
	var obj pushSubscriptionCreate
	invalid := func(prop, desc string) *setError {
		return &setError{Type: "invalidProperties", Description: desc, Properties: []string{prop}}
	}
	for k, v := range raw {
		var err error
		switch k {
		case "deviceClientId":
			err = json.Unmarshal(v, &obj.DeviceClientID)
		case "url":
			err = json.Unmarshal(v, &obj.URL)
		case "keys":
			err = json.Unmarshal(v, &obj.Keys)
		case "verificationCode":
			err = json.Unmarshal(v, &obj.VerificationCode)
		case "expires":
			err = json.Unmarshal(v, &obj.Expires)
		case "types":
			err = json.Unmarshal(v, &obj.Types)
		case "id":
			return nil, invalid("id", "id is set by the server")
		default:
			return nil, invalid(k, "Unknown property")
		}
		if err != nil {
			return nil, invalid(k, "Wrong type")
		}
	}
	if obj.DeviceClientID == "" {
		return nil, invalid("deviceClientId", "deviceClientId is required")
	}
	if !pushURLAllowed(obj.URL) {
		return nil, invalid("url", "url must be an https URL (http only to a loopback address)")
	}
	if obj.Keys != nil && (obj.Keys.P256DH == "" || obj.Keys.Auth == "") {
		return nil, invalid("keys", "keys needs p256dh and auth")
	}
	if obj.VerificationCode != nil {
		return nil, invalid("verificationCode", "verificationCode must be null at creation")
	}
	if obj.Types != nil {
		for _, t := range *obj.Types {
			if !slices.Contains(pushTypesAllowed, t) {
				return nil, invalid("types", "Unknown type "+strconv.Quote(t))
			}
		}
	}
	if obj.Expires != nil {
		if _, err := time.Parse(time.RFC3339, *obj.Expires); err != nil {
			return nil, invalid("expires", "expires must be a UTCDate")
		}
	}
	return &obj, nil
}

// applyPushPatch applies an update: only verificationCode, expires and
// types may change (RFC 8620 §7.2.2).
func applyPushPatch(sub *mailstore.PushSubscription, patch map[string]json.RawMessage) *setError {
	for k, v := range patch {
		invalid := &setError{Type: "invalidProperties", Properties: []string{k}}
		switch k {
		case "verificationCode":
			var code *string
			if json.Unmarshal(v, &code) != nil {
				return invalid
			}
			sub.VerificationCode = ""
			if code != nil {
				sub.VerificationCode = *code
			}
		case "expires":
			var exp *string
			if json.Unmarshal(v, &exp) != nil {
				return invalid
			}
			if exp != nil {
				if _, err := time.Parse(time.RFC3339, *exp); err != nil {
					return invalid
				}
			}
			sub.Expires = clampExpiry(exp)
		case "types":
			var types *[]string
			if json.Unmarshal(v, &types) != nil {
				return invalid
			}
			sub.Types = nil
			if types != nil {
				for _, t := range *types {
					if !slices.Contains(pushTypesAllowed, t) {
						return invalid
					}
				}
				sub.Types = *types
			}
		default:
			invalid.Description = "Only verificationCode, expires and types may change"
			return invalid
		}
	}
	return nil
}

// clampExpiry is the expiry the server grants for one asked for: at most
// maxPushExpiry from now, which is also the default.
func clampExpiry(asked *string) time.Time {
	limit := time.Now().Add(maxPushExpiry).Truncate(time.Second)
	if asked == nil {
		return limit
	}
	t, err := time.Parse(time.RFC3339, *asked)
	if err != nil || t.After(limit) {
		return limit
	}
	return t.Truncate(time.Second)
}

// pushURLAllowed: https, or http to a loopback address (a local push
// service, and tests).
func pushURLAllowed(s string) bool {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return false
	}
	if u.Scheme == "https" {
		return true
	}
	if u.Scheme != "http" {
		return false
	}
	host := u.Hostname()
	ip := net.ParseIP(host)
	return host == "localhost" || ip != nil && ip.IsLoopback()
}

func randomCode() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}
