package wakeup

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	webpush "github.com/SherClockHolmes/webpush-go"

	"pushmail/mailstore"
)

// Web Push (RFC 8030) for the users' JMAP push subscriptions (RFC 8620
// §7.2, mailstore.PushSubscription): each subscription is an endpoint of
// its own, named webPushPrefix and its id, created when the engine first
// needs the user's subscriptions and replaced when the store reports a
// change (notify.PushSubscriptionsChanged). A new subscription is sent a
// PushVerification; StateChanges go only to verified, unexpired ones.
// Payloads are encrypted for the client's keys (RFC 8291) and signed with
// the server's VAPID key (RFC 8292) by github.com/SherClockHolmes/webpush-go;
// a subscription without keys gets plain JSON, as RFC 8620 §7.2 says.

// VAPID is the server's application-server key pair (RFC 8292), as
// webpush.GenerateVAPIDKeys makes it: base64url strings.
type VAPID struct {
	PublicKey, PrivateKey string
	// Subscriber is the VAPID "sub" claim, a contact for the push
	// service: a mailto: or https: URL.
	Subscriber string
}

// PushVerification is the object sent to a new subscription (RFC 8620
// §7.2.2); the client proves it received it by setting the code on the
// subscription.
type PushVerification struct {
	Type               string `json:"@type"` // "PushVerification"
	PushSubscriptionID string `json:"pushSubscriptionId"`
	VerificationCode   string `json:"verificationCode"`
}

// SubscriptionID is the JMAP id of a push subscription.
func SubscriptionID(id int64) string { return "S" + strconv.FormatInt(id, 10) }

// ParseSubscriptionID returns the store id of a JMAP push subscription
// id, false if it is not one.
func ParseSubscriptionID(s string) (int64, bool) {
	n, err := strconv.ParseInt(strings.TrimPrefix(s, "S"), 10, 64)
	return n, err == nil && strings.HasPrefix(s, "S") && n > 0 && SubscriptionID(n) == s
}

// webPushPrefix starts the names of subscription endpoints.
const webPushPrefix = "webpush "

// webPushTTL is how long a push service keeps an undelivered push (RFC
// 8030 §5.2): a day; a client away longer resynchronises anyway.
const webPushTTL = 24 * 60 * 60

func webPushName(id int64) string { return webPushPrefix + strconv.FormatInt(id, 10) }

func newWebPushEndpoint(sub mailstore.PushSubscription) *endpoint {
	return &endpoint{name: webPushName(sub.ID), metric: "webpush", url: sub.URL, sub: &sub, pending: map[string]*item{}}
}

// pendingFor is the queue length reported for ep's metric: the
// subscriptions' queues count together. Engine.mu is held.
func (e *Engine) pendingFor(ep *endpoint) int {
	if ep.sub == nil {
		return len(ep.pending)
	}
	n := 0
	for _, o := range e.endpoints {
		if o.sub != nil {
			n += len(o.pending)
		}
	}
	return n
}

// subscriptions returns the user's subscription endpoints, reading them
// from the store the first time.
func (e *Engine) subscriptions(user mailstore.UserID) []*endpoint {
	e.mu.Lock()
	eps, ok := e.subs[user]
	e.mu.Unlock()
	if ok {
		return eps
	}
	return e.reloadSubscriptions(user, "")
}

// reloadSubscriptions reads the user's subscriptions again after the
// store reported a change to the one named changed (its id, "" if
// unknown): it adds endpoints for new ones, sending each a
// PushVerification, updates the others, and removes the endpoints (and
// pending wake-ups) of those destroyed.
func (e *Engine) reloadSubscriptions(user mailstore.UserID, changed string) []*endpoint {
	list, err := e.opts.Store.PushSubscriptions(e.ctx, user)
	if err != nil {
		e.logStoreError("read push subscriptions", err, "user", user)
		return nil
	}
	var verify []*endpoint
	e.mu.Lock()
	old := e.subs[user]
	var eps []*endpoint
	for _, sub := range list {
		name := webPushName(sub.ID)
		ep := e.endpoints[name]
		if ep == nil {
			ep = newWebPushEndpoint(sub)
			e.endpoints[name] = ep
			if !sub.Verified() && changed == strconv.FormatInt(sub.ID, 10) {
				verify = append(verify, ep)
			}
		} else {
			ep.sub, ep.url = &sub, sub.URL
		}
		eps = append(eps, ep)
	}
	for _, ep := range old {
		if !slices.Contains(eps, ep) {
			e.removeEndpointLocked(ep)
		}
	}
	if e.subs == nil {
		e.subs = map[mailstore.UserID][]*endpoint{}
	}
	e.subs[user] = eps
	e.mu.Unlock()
	for _, ep := range verify {
		body, err := json.Marshal(PushVerification{Type: "PushVerification", PushSubscriptionID: SubscriptionID(ep.sub.ID),
			VerificationCode: ep.sub.Code})
		if err != nil {
			e.log.Error("encode a push verification", "err", err)
			continue
		}
		e.enqueue(ep, "verify", user, body)
	}
	return eps
}

// removeEndpointLocked forgets a subscription's endpoint and its queue;
// a POST in flight finishes and is dropped. Engine.mu is held.
func (e *Engine) removeEndpointLocked(ep *endpoint) {
	delete(e.endpoints, ep.name)
	for key := range ep.pending {
		e.removedLocked(ep, key)
	}
	clear(ep.pending)
}

// restoreSubscription recreates, at Start, the endpoint of a pending
// wake-up for a push subscription; nil if the subscription is gone.
// Engine.mu is held.
func (e *Engine) restoreSubscription(ctx context.Context, p mailstore.PendingPush) *endpoint {
	if e.opts.VAPID == nil {
		return nil
	}
	id, err := strconv.ParseInt(strings.TrimPrefix(p.Endpoint, webPushPrefix), 10, 64)
	if err != nil {
		return nil
	}
	sub, err := e.opts.Store.PushSubscription(ctx, p.User, id)
	if err != nil {
		if !errors.Is(err, mailstore.ErrNoSuchPushSubscription) {
			e.log.Error("read a push subscription", "id", id, "err", err)
		}
		return nil
	}
	ep := newWebPushEndpoint(sub)
	e.endpoints[ep.name] = ep
	// The user's other subscriptions are read when next needed.
	return ep
}

// wantsState reports whether sub is to be sent a StateChange for a
// change of the kinds given: verified, not expired, and of a type it
// asked for.
func wantsState(sub *mailstore.PushSubscription, email, mailbox bool) bool {
	if !sub.Verified() || time.Now().After(sub.Expires) {
		return false
	}
	if sub.Types == nil {
		return true
	}
	return email && (slices.Contains(sub.Types, "Email") || slices.Contains(sub.Types, "Thread")) ||
		mailbox && slices.Contains(sub.Types, "Mailbox")
}

// postWebPush sends it to a subscription's push service.
func (e *Engine) postWebPush(ep *endpoint, it *item) (int, error) {
	e.mu.Lock()
	sub := *ep.sub
	e.mu.Unlock()
	body := it.payload // a PushVerification
	if body == nil {
		if !wantsState(&sub, true, true) {
			return http.StatusOK, nil // expired or unverified since queued: nothing to send
		}
		account, states, err := e.opts.States(e.ctx, it.user)
		if errors.Is(err, mailstore.ErrNoSuchUser) {
			return http.StatusGone, nil
		}
		if err != nil {
			return 0, fmt.Errorf("read state: %w", err)
		}
		email := sub.Types == nil || slices.Contains(sub.Types, "Email") || slices.Contains(sub.Types, "Thread")
		mailbox := sub.Types == nil || slices.Contains(sub.Types, "Mailbox")
		if body, err = json.Marshal(StateChange{Type: "StateChange", Changed: map[string]map[string]string{account: filterTypes(email, mailbox, states)}}); err != nil {
			return 0, err
		}
	}
	ctx, cancel := context.WithTimeout(e.ctx, e.opts.RequestTimeout)
	defer cancel()
	var resp *http.Response
	var err error
	if sub.P256DH != "" {
		resp, err = webpush.SendNotificationWithContext(ctx, body, &webpush.Subscription{Endpoint: sub.URL,
			Keys: webpush.Keys{P256dh: sub.P256DH, Auth: sub.Auth}}, &webpush.Options{
			HTTPClient: e.opts.Client, Subscriber: e.opts.VAPID.Subscriber, TTL: webPushTTL, Urgency: webpush.UrgencyNormal,
			VAPIDPublicKey: e.opts.VAPID.PublicKey, VAPIDPrivateKey: e.opts.VAPID.PrivateKey})
	} else {
		var req *http.Request
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, sub.URL, bytes.NewReader(body))
		if err != nil {
			return 0, err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("TTL", strconv.Itoa(webPushTTL)) // RFC 8030 §5.2: required
		req.Header.Set("Urgency", "normal")
		resp, err = e.opts.Client.Do(req)
	}
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	return resp.StatusCode, nil
}

// dropSubscription destroys a subscription whose push service answered
// 404 or 410 (RFC 8030 §7.3: the subscription is gone); the store's event
// then removes the endpoint.
func (e *Engine) dropSubscription(ep *endpoint) {
	e.mu.Lock()
	sub := *ep.sub
	e.mu.Unlock()
	err := e.opts.Store.DestroyPushSubscription(e.ctx, sub.User, sub.ID)
	if err != nil && !errors.Is(err, mailstore.ErrNoSuchPushSubscription) {
		e.logStoreError("destroy a push subscription its service says is gone", err, "id", sub.ID)
		return
	}
	e.log.Info("push subscription destroyed: its push service says it is gone", "id", sub.ID, "user", sub.User)
}
