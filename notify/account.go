package notify

// SubscribeAccount starts delivering the events of every mailbox of
// account (Event.Account), including mailboxes created after it, to a
// new Subscription: a watcher of a whole account, such as the HTTP
// API's event stream (RFC 8620 §7.3), which must learn of a mailbox
// created after it started. Its queue, resync flag and wake-ups behave
// as a mailbox subscription's. The caller must Close it when done.
func (h *Hub) SubscribeAccount(account int64) *Subscription {
	s := &Subscription{
		hub:     h,
		id:      h.nextID.Add(1),
		account: account,
		ready:   make(chan struct{}, 1),
		max:     h.queueLen,
	}
	h.mu.Lock()
	m := h.accounts[account]
	if m == nil {
		m = make(map[*Subscription]struct{})
		h.accounts[account] = m
	}
	m[s] = struct{}{}
	h.mu.Unlock()
	return s
}

// Account returns the watched account, 0 for a mailbox subscription.
func (s *Subscription) Account() int64 { return s.account }
