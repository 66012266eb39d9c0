// Package authlimit slows down, then refuses, password guessing, per
// client IP address and per account. One Limiter is meant to be shared by
// every protocol that checks passwords (smtpd's submission AUTH, imapd's
// LOGIN and AUTHENTICATE), so that guesses over any of them count
// together.
//
// Policy (DESIGN.md §5: "failed logins per IP and per account: slow down,
// then refuse"):
//   - Each failed password check counts once for the client's IP and once
//     for the account it named. A count is forgotten when Window has
//     passed since its latest failure.
//   - After a failure the protocol waits before it replies: Delay after
//     the first, doubling with each further failure of the IP or the
//     account (whichever has more), at most 32 × Delay.
//   - An IP with PerIP counted failures is refused, for every account,
//     without a password check.
//   - An account with PerAccount counted failures is refused, without a
//     password check, from every IP except those it has logged in from
//     successfully within the last 30 days.
//   - A refused attempt is not counted, so a refusal ends Window after the
//     last real failure: a lock is bounded in time, and the owner of an
//     account keeps access from the addresses they have used before while
//     someone else guesses from elsewhere. Nobody can lock an account out
//     for good.
//   - A successful login forgets the account's failures that came from
//     the address it came from, and only those, and trusts the pair
//     (account, IP). The failures from other addresses stay counted: if a
//     success cleared the whole count, an attacker would get a fresh
//     PerAccount guesses every time the owner logs in. It does not clear
//     the IP's count either: an attacker with an account of their own could
//     otherwise reset their address between guesses.
//   - Memory is bounded: at most 100,000 remembered IPs, accounts,
//     (account, IP) failure shares and trusted pairs each. A failure that finds no room is not remembered
//     but gets the longest delay.
package authlimit

import (
	"sync"
	"time"
)

// Defaults for the zero fields of Config.
const (
	DefaultPerIP      = 20
	DefaultPerAccount = 10
	DefaultWindow     = 15 * time.Minute
	DefaultDelay      = 250 * time.Millisecond
)

const (
	maxDelayFactor = 32                  // longest delay, in units of Config.Delay
	trustFor       = 30 * 24 * time.Hour // how long a successful (account, IP) pair is trusted
	maxEntries     = 100000              // per map
	pruneEvery     = time.Second         // at most one full scan per this, when a map is full
)

// Config sets a Limiter's limits. Zero fields take the defaults above.
type Config struct {
	// PerIP is the number of failures from one IP address after which it
	// is refused, for any account, until Window has passed since its last
	// failure.
	PerIP int
	// PerAccount is the number of failures for one account after which
	// it is refused from untrusted addresses, until Window has passed
	// since its last failure.
	PerAccount int
	// Window is how long a failure is remembered after the latest one of
	// the same IP or account, and so how long a refusal lasts.
	Window time.Duration
	// Delay is the pause before replying to a first failure; it doubles
	// with each further one, up to 32 × Delay.
	Delay time.Duration
}

// withDefaults returns c with its zero fields set.
func (c Config) withDefaults() Config {
	if c.PerIP <= 0 {
		c.PerIP = DefaultPerIP
	}
	if c.PerAccount <= 0 {
		c.PerAccount = DefaultPerAccount
	}
	if c.Window <= 0 {
		c.Window = DefaultWindow
	}
	if c.Delay <= 0 {
		c.Delay = DefaultDelay
	}
	return c
}

// Verdict is Check's answer.
type Verdict int

const (
	// Allowed: check the password.
	Allowed Verdict = iota
	// IPBlocked: the client's address has too many recent failures.
	IPBlocked
	// AccountBlocked: the account has too many recent failures from
	// addresses it is not known at.
	AccountBlocked
)

func (v Verdict) String() string {
	return [...]string{"allowed", "ip blocked", "account blocked"}[v]
}

// Limiter counts failed logins. Create it with New; its methods are safe
// for concurrent use. It starts no goroutines: old entries are dropped as
// they are met, and in one scan when a table is full.
//
// IPs and accounts are opaque keys: callers pass the address as text and
// the account name normalised (lower case), or "" to count nothing for it.
type Limiter struct {
	cfg        Config
	maxEntries int

	mu        sync.Mutex
	ips       map[string]*failures
	accounts  map[string]*failures
	sources   map[pair]*source   // the account's failures from one IP
	trusted   map[pair]time.Time // last successful login of the pair
	lastPrune time.Time
}

type failures struct {
	n    int
	last time.Time
}

// source is the share of an account's count that one IP contributed, so
// that a success from that IP can take back exactly its share. of is the
// account's entry the share belongs to: once that entry expires and a new
// one starts, the share is stale and taking it back would forgive
// somebody else's failures.
type source struct {
	n  int
	of *failures
}

type pair struct{ account, ip string }

// New returns a Limiter with cfg's limits.
func New(cfg Config) *Limiter {
	return &Limiter{
		cfg:        cfg.withDefaults(),
		maxEntries: maxEntries,
		ips:        make(map[string]*failures),
		accounts:   make(map[string]*failures),
		sources:    make(map[pair]*source),
		trusted:    make(map[pair]time.Time),
	}
}

// Config returns the limits in effect, defaults filled in.
func (l *Limiter) Config() Config { return l.cfg }

// Check reports whether a password for account may be checked now, from
// ip. A refusal is not a failure: it is not counted.
func (l *Limiter) Check(ip, account string, now time.Time) Verdict {
	l.mu.Lock()
	defer l.mu.Unlock()
	if ip != "" && l.countLocked(l.ips, ip, now) >= l.cfg.PerIP {
		return IPBlocked
	}
	if account != "" && l.countLocked(l.accounts, account, now) >= l.cfg.PerAccount &&
		!l.trustedLocked(account, ip, now) {
		return AccountBlocked
	}
	return Allowed
}

// Failed records a failed password check and returns how long to wait
// before replying.
func (l *Limiter) Failed(ip, account string, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, k := range []struct {
		m   map[string]*failures
		key string
	}{{l.ips, ip}, {l.accounts, account}} {
		if k.key == "" {
			continue
		}
		c, ok := l.bumpLocked(k.m, k.key, now)
		if !ok {
			return l.maxDelay()
		}
		n = max(n, c)
	}
	if ip != "" && account != "" {
		l.addSourceLocked(pair{account, ip}, now)
	}
	return l.delay(n)
}

// addSourceLocked counts the failure just added to p.account's entry as
// coming from p.ip. With no room for the share the failure still counts
// for the account; a later success from p.ip just cannot take it back.
func (l *Limiter) addSourceLocked(p pair, now time.Time) {
	acc := l.accounts[p.account]
	s := l.sources[p]
	if s == nil || s.of != acc {
		if s == nil && len(l.sources) >= l.maxEntries {
			l.pruneLocked(now)
			if len(l.sources) >= l.maxEntries {
				return
			}
		}
		s = &source{of: acc}
		l.sources[p] = s
	}
	s.n++
}

// Succeeded records a successful login: the account's failures from ip
// are forgotten, those from elsewhere stay, and ip becomes trusted for the
// account.
func (l *Limiter) Succeeded(ip, account string, now time.Time) {
	if account == "" || ip == "" {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	p := pair{account, ip}
	if s := l.sources[p]; s != nil {
		delete(l.sources, p)
		if acc := l.accounts[account]; acc != nil && acc == s.of {
			acc.n -= s.n
			if acc.n <= 0 {
				delete(l.accounts, account)
			}
		}
	}
	if _, ok := l.trusted[p]; !ok && len(l.trusted) >= l.maxEntries {
		l.pruneLocked(now)
		if len(l.trusted) >= l.maxEntries {
			return
		}
	}
	l.trusted[p] = now
}

// delay is the wait after the n-th recent failure.
func (l *Limiter) delay(n int) time.Duration {
	d := l.cfg.Delay
	for i := 1; i < n && d < l.maxDelay(); i++ {
		d *= 2
	}
	return min(d, l.maxDelay())
}

func (l *Limiter) maxDelay() time.Duration { return maxDelayFactor * l.cfg.Delay }

// countLocked returns key's recent failures, forgetting old ones.
func (l *Limiter) countLocked(m map[string]*failures, key string, now time.Time) int {
	f := m[key]
	if f == nil {
		return 0
	}
	if now.Sub(f.last) > l.cfg.Window {
		delete(m, key)
		return 0
	}
	return f.n
}

// bumpLocked counts one failure for key and returns the new count; ok is
// false when the table is full and key could not be added.
func (l *Limiter) bumpLocked(m map[string]*failures, key string, now time.Time) (n int, ok bool) {
	n = l.countLocked(m, key, now)
	f := m[key]
	if f == nil {
		if len(m) >= l.maxEntries {
			l.pruneLocked(now)
			if len(m) >= l.maxEntries {
				return 0, false
			}
		}
		f = &failures{}
		m[key] = f
	}
	f.n = n + 1
	f.last = now
	return f.n, true
}

func (l *Limiter) trustedLocked(account, ip string, now time.Time) bool {
	if ip == "" {
		return false
	}
	t, ok := l.trusted[pair{account, ip}]
	return ok && now.Sub(t) <= trustFor
}

// pruneLocked drops expired entries from every table, at most once per
// pruneEvery: under a flood of new keys a full table stays full, and
// scanning it for every failure would cost more than the flood.
func (l *Limiter) pruneLocked(now time.Time) {
	if now.Sub(l.lastPrune) < pruneEvery && !l.lastPrune.IsZero() {
		return
	}
	l.lastPrune = now
	for _, m := range []map[string]*failures{l.ips, l.accounts} {
		for k, f := range m {
			if now.Sub(f.last) > l.cfg.Window {
				delete(m, k)
			}
		}
	}
	for p, s := range l.sources {
		if l.accounts[p.account] != s.of {
			delete(l.sources, p)
		}
	}
	for p, t := range l.trusted {
		if now.Sub(t) > trustFor {
			delete(l.trusted, p)
		}
	}
}
