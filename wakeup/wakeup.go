// Package wakeup wakes clients that hold no connection. It hears every
// commit through one notify.Hub subscription and POSTs, from goroutines
// of its own:
//
//   - to each operator webhook (Webhook), for each user it watches whose
//     mail changed, that user's JMAP StateChange (RFC 8620 §7.1), signed
//     with HMAC-SHA256 (see Sign);
//   - to the device-token relay (Relay), one POST per new INBOX message
//     of a user who stored a token at /private/devicetoken with
//     SETMETADATA INBOX (RFC 5464; Delta Chat's convention), the token as
//     the body.
//
// One delivery engine serves both. Each endpoint has its own queue of
// pending wake-ups, keyed so that they coalesce: a user's StateChange is
// one entry however many commits come before it is sent, and it is built
// when sent, so it carries the newest state. A failed attempt is retried
// with exponential backoff and jitter up to Options.MaxAttempts; an
// endpoint answering 404 or 410 drops the wake-up (and, for the relay,
// the token, which the relay says is gone); each endpoint has at most
// Options.PerEndpoint requests in flight and Options.MaxPending wake-ups
// queued. Pending wake-ups are written to the store (mailstore's
// push_pending) shortly after they are queued and removed when
// delivered, so a restart delivers them; a crash can lose those queued
// in the last Options.PersistEvery.
//
// Nothing here runs on a commit's path: the hub never blocks its
// publisher, and a slow or dead endpoint only fills its own queue.
package wakeup

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"pushmail/mailstore"
	"pushmail/notify"
)

// Webhook is an operator's endpoint for StateChanges.
type Webhook struct {
	// URL receives the POSTs.
	URL string
	// Users are the addresses watched (as mailstore normalises them), or
	// "*" for every user.
	Users []string
	// Types are the JMAP data types whose changes are sent: "Email"
	// (messages delivered, appended, flagged, expunged), "Mailbox" (those
	// too, since they change a mailbox's counts, and mailboxes created,
	// renamed or deleted). Empty means both.
	Types []string
	// Secret keys the signature header (Sign); empty sends none.
	Secret string
}

// Relay is the operator's notification relay for device tokens.
type Relay struct {
	// URL receives one POST per new message, the token as the body.
	URL string
}

// StateChange is RFC 8620 §7.1's object: for each account, the new
// state string of each data type that changed.
type StateChange struct {
	Type    string                       `json:"@type"` // "StateChange"
	Changed map[string]map[string]string `json:"changed"`
}

// StateFunc returns a user's account id and current state strings, as
// the HTTP API reports them, so that a webhook receiver can ask the API
// for the changes.
type StateFunc func(ctx context.Context, user mailstore.UserID) (account string, states map[string]string, err error)

// DeviceTokenEntry is the mailbox metadata entry, on INBOX, that holds a
// device token (Delta Chat's name for it).
const DeviceTokenEntry = "/private/devicetoken"

// SignatureHeader carries a webhook POST's signature: "t=<Unix
// seconds>,v1=<hex HMAC-SHA256 of t, ".", and the body>", keyed with the
// webhook's secret. A receiver recomputes it and rejects an old t, so a
// recorded POST cannot be replayed later.
const SignatureHeader = "Pushmail-Signature"

// Sign returns SignatureHeader's value for body sent at t.
func Sign(secret string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(ts))
	mac.Write([]byte("."))
	mac.Write(body)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac.Sum(nil))
}

// Options configure an Engine.
type Options struct {
	Store *mailstore.Store
	Hub   *notify.Hub
	// Webhooks and Relay are the endpoints; with neither, Start is not
	// needed.
	Webhooks []Webhook
	Relay    *Relay
	// States builds a StateChange; required with Webhooks and VAPID.
	States StateFunc
	// VAPID turns Web Push on: the users' push subscriptions (RFC 8620
	// §7.2, mailstore.PushSubscription) get their StateChanges, signed
	// with this key pair (RFC 8292). nil: off.
	VAPID *VAPID
	// Client sends the POSTs; nil: one with RequestTimeout.
	Client *http.Client
	// RequestTimeout bounds one POST; 0: 10 s.
	RequestTimeout time.Duration
	// MinBackoff and MaxBackoff bound the wait before a retry, doubled
	// per attempt with ±50 % jitter; 0: 1 s and 10 min.
	MinBackoff, MaxBackoff time.Duration
	// MaxAttempts is the number of tries before a wake-up is dropped; 0:
	// 12 (about an hour of retries with the default backoff).
	MaxAttempts int
	// PerEndpoint is the number of POSTs in flight per endpoint; 0: 2.
	PerEndpoint int
	// MaxPending bounds an endpoint's queue; a wake-up that finds it full
	// is dropped and counted. 0: 10,000.
	MaxPending int
	// PersistEvery is how often queue changes are written to the store;
	// 0: 100 ms.
	PersistEvery time.Duration
	// QueueLen is the hub subscription's buffer; 0: 65,536 events.
	QueueLen int
	Logger   *slog.Logger
	Metrics  *Metrics // nil records nothing
}

func (o *Options) defaults() {
	if o.RequestTimeout == 0 {
		o.RequestTimeout = 10 * time.Second
	}
	if o.Client == nil {
		o.Client = &http.Client{Timeout: o.RequestTimeout}
	}
	if o.MinBackoff == 0 {
		o.MinBackoff = time.Second
	}
	if o.MaxBackoff == 0 {
		o.MaxBackoff = 10 * time.Minute
	}
	if o.MaxAttempts == 0 {
		o.MaxAttempts = 12
	}
	if o.PerEndpoint == 0 {
		o.PerEndpoint = 2
	}
	if o.MaxPending == 0 {
		o.MaxPending = 10_000
	}
	if o.PersistEvery == 0 {
		o.PersistEvery = 100 * time.Millisecond
	}
	if o.QueueLen == 0 {
		o.QueueLen = 1 << 16
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Engine delivers wake-ups. Start it once; Close stops it.
type Engine struct {
	opts      Options
	log       *slog.Logger
	endpoints map[string]*endpoint // by name
	ordered   []*endpoint          // in configuration order
	relay     *endpoint            // nil without a relay

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	sub    *notify.Subscription
	kick   chan struct{} // the scheduler has work: one slot

	mu     sync.Mutex
	put    map[mailstore.PendingPushKey]mailstore.PendingPush // to persist
	done   map[mailstore.PendingPushKey]struct{}              // to remove
	users  map[mailstore.UserID]string                        // address cache
	tokens map[mailstore.UserID]tokenInfo                     // device token cache
	subs   map[mailstore.UserID][]*endpoint                   // push subscription endpoints, read once per user
}

// tokenInfo is a user's INBOX and the device token stored on it ("" for
// none), as last read from the store.
type tokenInfo struct {
	inbox mailstore.MailboxID
	token string
}

// endpoint is one webhook or the relay, with its queue. Its fields after
// the configuration are guarded by Engine.mu.
type endpoint struct {
	name    string // "webhook <url>", "relay <url>" or "webpush <id>": the persisted name and logs
	metric  string // the metrics' endpoint label: name, or "webpush" for every subscription
	url     string
	webhook *Webhook                    // a webhook's
	sub     *mailstore.PushSubscription // a Web Push subscription's; replaced when it changes
	all     bool                        // every user
	users   map[string]bool
	email   bool // Types has Email
	mailbox bool // Types has Mailbox

	pending  map[string]*item // by key
	inFlight int
}

// item is one pending wake-up.
type item struct {
	key       string
	user      mailstore.UserID
	payload   []byte // the relay's token; nil for a StateChange, built when sent
	attempts  int
	notBefore time.Time
	sending   bool
	again     bool // queued again while sending: send again after
}

// New returns an Engine for opts.
func New(opts Options) (*Engine, error) {
	opts.defaults()
	if len(opts.Webhooks) > 0 && opts.States == nil {
		return nil, errors.New("wakeup: webhooks need Options.States")
	}
	e := &Engine{opts: opts, log: opts.Logger.With("component", "wakeup"), endpoints: map[string]*endpoint{},
		kick: make(chan struct{}, 1), put: map[mailstore.PendingPushKey]mailstore.PendingPush{},
		done: map[mailstore.PendingPushKey]struct{}{}, users: map[mailstore.UserID]string{}, tokens: map[mailstore.UserID]tokenInfo{}}
	for i := range opts.Webhooks {
		w := &opts.Webhooks[i]
		ep := &endpoint{name: "webhook " + w.URL, url: w.URL, webhook: w, users: map[string]bool{}, pending: map[string]*item{}}
		ep.metric = ep.name
		for _, u := range w.Users {
			if u == "*" {
				ep.all = true
			}
			ep.users[u] = true
		}
		if len(w.Types) == 0 {
			ep.email, ep.mailbox = true, true
		}
		for _, t := range w.Types {
			switch t {
			case "Email":
				ep.email = true
			case "Mailbox":
				ep.mailbox = true
			default:
				return nil, fmt.Errorf("wakeup: webhook %s: unknown type %q (want Email or Mailbox)", w.URL, t)
			}
		}
		if _, dup := e.endpoints[ep.name]; dup {
			return nil, fmt.Errorf("wakeup: webhook %s configured twice", w.URL)
		}
		e.endpoints[ep.name] = ep
		e.ordered = append(e.ordered, ep)
	}
	if opts.Relay != nil {
		e.relay = &endpoint{name: "relay " + opts.Relay.URL, url: opts.Relay.URL, pending: map[string]*item{}}
		e.relay.metric = e.relay.name
		e.endpoints[e.relay.name] = e.relay
		e.ordered = append(e.ordered, e.relay)
	}
	if opts.VAPID != nil {
		if opts.States == nil {
			return nil, errors.New("wakeup: Web Push needs Options.States")
		}
		opts.Metrics.endpoint("webpush")
	}
	for _, ep := range e.ordered {
		opts.Metrics.endpoint(ep.metric)
	}
	return e, nil
}

// Start subscribes to the hub, loads the wake-ups a previous run left
// pending, and starts delivering. Rows for endpoints no longer
// configured are removed.
func (e *Engine) Start(ctx context.Context) error {
	e.ctx, e.cancel = context.WithCancel(context.Background())
	// Subscribe before loading: a commit between the two is then queued
	// twice at worst, never missed.
	e.sub = e.opts.Hub.SubscribeAll(e.opts.QueueLen)
	left, err := e.opts.Store.PendingPushes(ctx)
	if err != nil {
		e.sub.Close()
		return fmt.Errorf("wakeup: %w", err)
	}
	e.mu.Lock()
	for _, p := range left {
		ep := e.endpoints[p.Endpoint]
		if ep == nil && strings.HasPrefix(p.Endpoint, webPushPrefix) {
			ep = e.restoreSubscription(ctx, p)
		}
		if ep == nil {
			e.done[mailstore.PendingPushKey{Endpoint: p.Endpoint, Key: p.Key}] = struct{}{}
			continue
		}
		ep.pending[p.Key] = &item{key: p.Key, user: p.User, payload: p.Payload, attempts: p.Attempts, notBefore: p.NotBefore}
	}
	for _, ep := range e.endpoints {
		e.opts.Metrics.queued(ep.metric, e.pendingFor(ep))
	}
	e.mu.Unlock()
	if len(left) > 0 {
		e.log.Info("wake-ups left pending by the last run", "count", len(left))
	}
	e.wg.Add(3)
	go e.listen()
	go e.schedule()
	go e.persist()
	e.poke()
	return nil
}

// Close stops delivering, waits for the POSTs in flight, and writes what
// is still pending to the store, for the next Start.
func (e *Engine) Close() error {
	if e.cancel == nil {
		return nil
	}
	e.sub.Close()
	e.cancel()
	e.wg.Wait()
	return e.flush(context.Background())
}

// listen turns hub events into queued wake-ups.
func (e *Engine) listen() {
	defer e.wg.Done()
	for {
		select {
		case <-e.ctx.Done():
			return
		case <-e.sub.Ready():
		}
		events, resync := e.sub.Take()
		if resync {
			e.resync()
		}
		for _, ev := range events {
			e.handle(ev)
		}
	}
}

// resync: events were lost (the subscription fell behind). Every user
// might have changed: each watched user's StateChange is queued, which
// is always correct, if more than needed. Device-token wake-ups for the
// lost deliveries cannot be recovered: they are counted.
func (e *Engine) resync() {
	e.opts.Metrics.lostEvents()
	e.log.Warn("wake-up engine fell behind the commits: sending every watched user's state")
	users, err := e.opts.Store.Users(e.ctx)
	if err != nil {
		e.logStoreError("list users after falling behind", err)
		return
	}
	for _, u := range users {
		for _, ep := range e.ordered {
			if ep.webhook != nil && (ep.all || ep.users[u.Address]) {
				e.enqueue(ep, "state", u.ID, nil)
			}
		}
	}
}

// handle queues the wake-ups one event calls for.
func (e *Engine) handle(ev notify.Event) {
	if ev.User == 0 || ev.Remote {
		// Another node's commit is that node's engine's to wake for
		// (nodes sharing a PostgreSQL store): one wake-up per change.
		return
	}
	user := mailstore.UserID(ev.User)
	if ev.Kind == notify.MetadataChanged || ev.Kind == notify.MailboxChanged {
		e.mu.Lock()
		delete(e.tokens, user) // a token set or removed, or INBOX renamed
		e.mu.Unlock()
	}
	emailChange := ev.Kind == notify.Appended || ev.Kind == notify.Expunged || ev.Kind == notify.FlagsChanged
	mailboxChange := emailChange || ev.Kind == notify.MailboxChanged
	var addr string
	for _, ep := range e.ordered {
		if ep.webhook == nil || !(ep.email && emailChange || ep.mailbox && mailboxChange) {
			continue
		}
		if !ep.all {
			if addr == "" {
				addr = e.address(user)
			}
			if !ep.users[addr] {
				continue
			}
		}
		e.enqueue(ep, "state", user, nil)
	}
	if e.opts.VAPID != nil {
		if ev.Kind == notify.PushSubscriptionsChanged {
			e.reloadSubscriptions(user, ev.Name)
		}
		if emailChange || mailboxChange {
			for _, ep := range e.subscriptions(user) {
				if wantsState(ep.sub, emailChange, mailboxChange) {
					e.enqueue(ep, "state", user, nil)
				}
			}
		}
	}
	if e.relay != nil && ev.Kind == notify.Appended {
		tok := e.token(user)
		if tok.token != "" && tok.inbox == mailstore.MailboxID(ev.Mailbox) {
			for _, uid := range ev.UIDs {
				e.enqueue(e.relay, fmt.Sprintf("msg %d %d", ev.Mailbox, uid), user, []byte(tok.token))
			}
		}
	}
}

// address returns the user's address, "" if the user is gone.
func (e *Engine) address(user mailstore.UserID) string {
	e.mu.Lock()
	addr, ok := e.users[user]
	e.mu.Unlock()
	if ok {
		return addr
	}
	addr, err := e.opts.Store.UserAddress(e.ctx, user)
	if err != nil {
		if !errors.Is(err, mailstore.ErrNoSuchUser) {
			e.logStoreError("look up a user for webhooks", err, "user", user)
		}
		return ""
	}
	e.mu.Lock()
	e.users[user] = addr
	e.mu.Unlock()
	return addr
}

// token returns the user's INBOX and device token, reading the store once
// until a metadata or mailbox event for the user drops it from the cache.
func (e *Engine) token(user mailstore.UserID) tokenInfo {
	e.mu.Lock()
	t, ok := e.tokens[user]
	e.mu.Unlock()
	if ok {
		return t
	}
	addr := e.address(user)
	if addr == "" {
		return tokenInfo{}
	}
	box, err := e.opts.Store.Mailbox(e.ctx, user, "INBOX")
	if err != nil {
		e.logStoreError("look up INBOX for a device token", err, "user", addr)
		return tokenInfo{}
	}
	t.inbox = box.ID
	entries, err := e.opts.Store.Metadata(e.ctx, user, box.ID, []string{DeviceTokenEntry}, mailstore.DepthZero)
	if err != nil {
		e.logStoreError("read a device token", err, "user", addr)
		return tokenInfo{}
	}
	if len(entries) == 1 {
		t.token = string(entries[0].Value)
	}
	e.mu.Lock()
	e.tokens[user] = t
	e.mu.Unlock()
	return t
}

// enqueue queues a wake-up, or marks the one with the same key to be sent
// again; it drops it when the endpoint's queue is full.
func (e *Engine) enqueue(ep *endpoint, key string, user mailstore.UserID, payload []byte) {
	if key == "state" {
		key = "state " + strconv.FormatInt(int64(user), 10)
	}
	e.mu.Lock()
	it := ep.pending[key]
	switch {
	case it != nil && it.sending:
		it.again = true
	case it != nil:
		// Coalesced: the pending one will carry the newest state. A retry
		// keeps its backoff.
	case len(ep.pending) >= e.opts.MaxPending:
		e.mu.Unlock()
		e.opts.Metrics.delivered(ep.metric, "dropped_full")
		e.log.Warn("wake-up dropped: endpoint queue full", "endpoint", ep.name, "max_pending", e.opts.MaxPending)
		return
	default:
		it = &item{key: key, user: user, payload: payload, notBefore: time.Now()}
		ep.pending[key] = it
		e.savedLocked(ep, it)
	}
	e.opts.Metrics.queued(ep.metric, e.pendingFor(ep))
	e.mu.Unlock()
	e.poke()
}

// savedLocked records that it must be written to the store.
func (e *Engine) savedLocked(ep *endpoint, it *item) {
	k := mailstore.PendingPushKey{Endpoint: ep.name, Key: it.key}
	delete(e.done, k)
	e.put[k] = mailstore.PendingPush{Endpoint: ep.name, Key: it.key, User: it.user, Payload: it.payload,
		Attempts: it.attempts, NotBefore: it.notBefore}
}

// removedLocked records that the row of key must go.
func (e *Engine) removedLocked(ep *endpoint, key string) {
	k := mailstore.PendingPushKey{Endpoint: ep.name, Key: key}
	delete(e.put, k)
	e.done[k] = struct{}{}
}

// poke wakes the scheduler.
func (e *Engine) poke() {
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

// schedule starts the sends that are due, as the endpoints' in-flight
// limits allow, and sleeps until the next one is due or something
// changes.
func (e *Engine) schedule() {
	defer e.wg.Done()
	var sends sync.WaitGroup
	defer sends.Wait()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := time.Now()
		next := now.Add(time.Hour)
		e.mu.Lock()
		for _, ep := range e.endpoints {
			for _, it := range ep.pending {
				if it.sending {
					continue
				}
				if it.notBefore.After(now) {
					if it.notBefore.Before(next) {
						next = it.notBefore
					}
					continue
				}
				if ep.inFlight >= e.opts.PerEndpoint {
					break
				}
				it.sending, it.again = true, false
				ep.inFlight++
				sends.Add(1)
				go func(ep *endpoint, it *item) {
					defer sends.Done()
					e.send(ep, it)
				}(ep, it)
			}
		}
		e.mu.Unlock()
		timer.Reset(time.Until(next))
		select {
		case <-e.ctx.Done():
			return
		case <-e.kick:
		case <-timer.C:
		}
	}
}

// Permanent refusals: 404 and 410 say the endpoint (or token) is gone.
func gone(code int) bool { return code == http.StatusNotFound || code == http.StatusGone }

// send makes one attempt at delivering it, then requeues or forgets it.
func (e *Engine) send(ep *endpoint, it *item) {
	code, err := e.post(ep, it)
	e.mu.Lock()
	ep.inFlight--
	result := "ok"
	switch {
	case err == nil && code/100 == 2:
		if it.again {
			it.attempts, it.notBefore = 0, time.Now()
			break
		}
		delete(ep.pending, it.key)
		e.removedLocked(ep, it.key)
	case err == nil && (gone(code) || code/100 == 4 && code != http.StatusTooManyRequests && code != http.StatusRequestTimeout):
		result = "refused"
		delete(ep.pending, it.key)
		e.removedLocked(ep, it.key)
		e.log.Error("wake-up refused by its endpoint: dropped", "endpoint", ep.name, "key", it.key, "status", code)
	case errors.Is(err, context.Canceled) && e.ctx.Err() != nil:
		result = "" // shutting down: stays pending as it was
	default:
		it.attempts++
		if it.attempts >= e.opts.MaxAttempts {
			result = "given_up"
			delete(ep.pending, it.key)
			e.removedLocked(ep, it.key)
			e.log.Error("wake-up given up after its last attempt", "endpoint", ep.name, "key", it.key,
				"attempts", it.attempts, "status", code, "err", err)
			break
		}
		result = "retry"
		it.notBefore = time.Now().Add(e.backoff(it.attempts))
		e.savedLocked(ep, it)
		e.log.Info("wake-up failed: will retry", "endpoint", ep.name, "key", it.key, "attempt", it.attempts,
			"status", code, "err", err, "retry_at", it.notBefore.Format(time.RFC3339))
	}
	it.sending = false
	if it.again && ep.pending[it.key] == it {
		e.savedLocked(ep, it)
	}
	e.opts.Metrics.queued(ep.metric, e.pendingFor(ep))
	e.mu.Unlock()
	if result != "" {
		e.opts.Metrics.delivered(ep.metric, result)
	}
	if ep == e.relay && result == "refused" && gone(code) {
		e.dropToken(it.user, string(it.payload))
	}
	if ep.sub != nil && result == "refused" && gone(code) {
		e.dropSubscription(ep)
	}
	e.poke()
}

// backoff is the wait before attempt n+1: MinBackoff doubled n-1 times,
// at most MaxBackoff, then ±50 % so that endpoints that failed together
// are not retried together.
func (e *Engine) backoff(n int) time.Duration {
	d := e.opts.MinBackoff
	for i := 1; i < n && d < e.opts.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, e.opts.MaxBackoff)
	return d/2 + rand.N(d)
}

// post sends one request and returns its status.
func (e *Engine) post(ep *endpoint, it *item) (int, error) {
	if ep.sub != nil {
		return e.postWebPush(ep, it)
	}
	body, contentType := it.payload, "text/plain; charset=utf-8"
	if ep.webhook != nil {
		account, states, err := e.opts.States(e.ctx, it.user)
		if errors.Is(err, mailstore.ErrNoSuchUser) {
			return http.StatusGone, nil // nothing to tell about a deleted user
		}
		if err != nil {
			return 0, fmt.Errorf("read state: %w", err)
		}
		body, err = json.Marshal(StateChange{Type: "StateChange", Changed: map[string]map[string]string{account: filterTypes(ep.email, ep.mailbox, states)}})
		if err != nil {
			return 0, err
		}
		contentType = "application/json"
	}
	ctx, cancel := context.WithTimeout(e.ctx, e.opts.RequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ep.url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("User-Agent", "pushmail")
	if ep.webhook != nil && ep.webhook.Secret != "" {
		req.Header.Set(SignatureHeader, Sign(ep.webhook.Secret, time.Now(), body))
	}
	resp, err := e.opts.Client.Do(req)
	if err != nil {
		return 0, err
	}
	// Read a little of the answer so the connection can be reused.
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	return resp.StatusCode, nil
}

// filterTypes keeps the states of the data types watched.
func filterTypes(email, mailbox bool, states map[string]string) map[string]string {
	out := map[string]string{}
	for t, s := range states {
		if t == "Email" && email || t == "Mailbox" && mailbox || t == "Thread" && email {
			out[t] = s
		}
	}
	return out
}

// dropToken removes a device token the relay said is gone (RFC 5464
// entries are the user's; this is the one the relay owns the meaning
// of), unless the user has stored another since.
func (e *Engine) dropToken(user mailstore.UserID, token string) {
	t := e.token(user)
	if t.token != token || t.inbox == 0 {
		return
	}
	err := e.opts.Store.SetMetadata(e.ctx, user, t.inbox, []mailstore.MetadataEntry{{Name: DeviceTokenEntry, Delete: true}})
	if err != nil {
		e.logStoreError("remove a device token the relay refused", err, "user", user)
		return
	}
	e.log.Info("device token removed: the relay said it is gone", "user", user)
}

// persist writes queue changes to the store every PersistEvery.
func (e *Engine) persist() {
	defer e.wg.Done()
	tick := time.NewTicker(e.opts.PersistEvery)
	defer tick.Stop()
	for {
		select {
		case <-e.ctx.Done():
			return
		case <-tick.C:
		}
		if err := e.flush(e.ctx); err != nil && e.ctx.Err() == nil {
			e.log.Error("save pending wake-ups", "err", err)
		}
	}
}

// flush writes the queue changes recorded since the last flush; on
// failure they are kept for the next.
func (e *Engine) flush(ctx context.Context) error {
	e.mu.Lock()
	if len(e.put) == 0 && len(e.done) == 0 {
		e.mu.Unlock()
		return nil
	}
	put := make([]mailstore.PendingPush, 0, len(e.put))
	for _, p := range e.put {
		put = append(put, p)
	}
	done := make([]mailstore.PendingPushKey, 0, len(e.done))
	for k := range e.done {
		done = append(done, k)
	}
	clear(e.put)
	clear(e.done)
	e.mu.Unlock()
	err := e.opts.Store.SavePendingPushes(ctx, put, done)
	if err != nil {
		e.mu.Lock()
		for _, p := range put {
			k := mailstore.PendingPushKey{Endpoint: p.Endpoint, Key: p.Key}
			if _, newer := e.put[k]; !newer {
				if _, gone := e.done[k]; !gone {
					e.put[k] = p
				}
			}
		}
		for _, k := range done {
			if _, newer := e.put[k]; !newer {
				e.done[k] = struct{}{}
			}
		}
		e.mu.Unlock()
	}
	return err
}

// Pending returns the number of wake-ups queued per endpoint name, the
// Web Push subscriptions' together under "webpush".
func (e *Engine) Pending() map[string]int {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := map[string]int{}
	for _, ep := range e.endpoints {
		out[ep.metric] += len(ep.pending)
	}
	return out
}

// logStoreError logs a store call that failed, unless the engine is
// stopping: Close cancels e.ctx, which fails the call under way. That is
// the stop, not a fault: the event being handled is dropped like the
// events Close leaves untaken, and the wake-ups already queued are saved
// by Close's flush.
func (e *Engine) logStoreError(msg string, err error, args ...any) {
	if e.ctx.Err() != nil {
		return
	}
	e.log.Error(msg, append(args, "err", err)...)
}
