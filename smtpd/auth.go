package smtpd

import (
	"errors"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"pushmail/mailstore"
)

var _ smtp.AuthSession = (*submissionSession)(nil)

// submissionSession is a session that offers AUTH (RFC 4954): only the
// submission role has one, so the MX and LMTP roles do not advertise AUTH.
type submissionSession struct{ *session }

// AuthMechanisms lists PLAIN (RFC 4616) and LOGIN where passwords may be
// sent, and nothing elsewhere, so EHLO does not offer AUTH on a plaintext
// remote connection (RFC 4954 §4, DESIGN.md §5).
func (ss *submissionSession) AuthMechanisms() []string {
	if !ss.authAllowed() {
		return nil
	}
	return []string{sasl.Plain, sasl.Login}
}

// Auth starts an exchange for mech.
func (ss *submissionSession) Auth(mech string) (sasl.Server, error) {
	if !ss.authAllowed() {
		return nil, replyEncryptionRequired
	}
	switch mech {
	case sasl.Plain:
		return saslReplies{sasl.NewPlainServer(ss.authenticate)}, nil
	case sasl.Login:
		return saslReplies{&loginServer{authenticate: ss.authenticate}}, nil
	}
	return nil, smtp.ErrAuthUnknownMechanism
}

// authAllowed reports whether a password may be sent on this session:
// after STARTTLS, from a loopback address or unix socket, or when the
// operator allows it everywhere.
func (ss *submissionSession) authAllowed() bool {
	return ss.tls != nil || ss.srv.opts.AllowInsecureAuth || ss.srv.loopback(ss.remote)
}

// authenticate checks a password with the store. A failure is answered
// only after a delay that grows with the failures from the client's
// address; past a limit the address is refused without a check.
func (ss *submissionSession) authenticate(identity, username, password string) error {
	// RFC 4616 §2: an authorization identity other than the user's own
	// would mean acting for someone else, which is not supported.
	if identity != "" && identity != username {
		return replyAuthzidDenied
	}
	ip := ipKey(ss.remote)
	if ip == "" {
		ip = "local"
	}
	if !ss.srv.auth.allowed(ip, time.Now()) {
		ss.log.Info("authentication refused: too many failures", "user", username)
		return replyAuthTooMany
	}
	u, err := ss.srv.store.Authenticate(ss.ctx, username, password)
	if err == nil {
		ss.srv.auth.succeeded(ip)
		ss.mu.Lock()
		ss.user = &u
		ss.mu.Unlock()
		ss.log.Info("authenticated", "user", u.Address)
		return nil
	}
	if errors.Is(err, mailstore.ErrAuthFailed) {
		delay := ss.srv.auth.failed(ip, time.Now())
		ss.log.Info("authentication failed", "user", username, "delay", delay)
		timer := time.NewTimer(delay)
		select {
		case <-timer.C:
		case <-ss.ctx.Done():
			timer.Stop()
		}
	}
	return ss.replyFor(stageAuth, err, ss.cid)
}

// saslReplies makes the errors of a sasl.Server replies: go-sasl's own
// (a malformed PLAIN response) would reach the client as raw text.
type saslReplies struct{ sasl.Server }

func (s saslReplies) Next(response []byte) (challenge []byte, done bool, err error) {
	challenge, done, err = s.Server.Next(response)
	if err != nil {
		if _, ok := err.(*smtp.SMTPError); !ok { // go-smtp checks the type, not a chain
			err = replyAuthMalformed
		}
	}
	return challenge, done, err
}

// loginServer is the server side of the LOGIN mechanism
// (draft-murchison-sasl-login): "Username:", then "Password:". go-sasl
// has only the client side. An initial response is the user name.
type loginServer struct {
	authenticate func(identity, username, password string) error
	step         int
	username     string
}

func (l *loginServer) Next(response []byte) (challenge []byte, done bool, err error) {
	switch l.step {
	case 0:
		if response == nil {
			l.step = 1
			return []byte("Username:"), false, nil
		}
		l.username, l.step = string(response), 2
		return []byte("Password:"), false, nil
	case 1:
		l.username, l.step = string(response), 2
		return []byte("Password:"), false, nil
	case 2:
		l.step = 3
		return nil, true, l.authenticate("", l.username, string(response))
	}
	return nil, false, replyAuthMalformed
}

// authLimiter slows down password guessing per remote IP: each failure
// within window doubles the delay before the reply, from base up to max,
// and after refuseAfter failures the address is refused until window has
// passed since its last failure. A success clears the address. Safe for
// concurrent use.
type authLimiter struct {
	base, max   time.Duration
	window      time.Duration
	refuseAfter int
	maxEntries  int // bounds the table; beyond, new addresses get max

	mu    sync.Mutex
	fails map[string]*authFailures
}

type authFailures struct {
	n    int
	last time.Time
}

func newAuthLimiter() *authLimiter {
	return &authLimiter{
		base:        500 * time.Millisecond,
		max:         16 * time.Second,
		window:      15 * time.Minute,
		refuseAfter: 10,
		maxEntries:  10000,
		fails:       make(map[string]*authFailures),
	}
}

// allowed reports whether ip may try a password at now.
func (l *authLimiter) allowed(ip string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.fails[ip]
	if f == nil {
		return true
	}
	if now.Sub(f.last) > l.window {
		delete(l.fails, ip)
		return true
	}
	return f.n < l.refuseAfter
}

// failed records a failure of ip at now and returns the delay before
// replying.
func (l *authLimiter) failed(ip string, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.fails[ip]
	if f == nil || now.Sub(f.last) > l.window {
		if len(l.fails) >= l.maxEntries {
			l.pruneLocked(now)
			if len(l.fails) >= l.maxEntries {
				return l.max
			}
		}
		f = &authFailures{}
		l.fails[ip] = f
	}
	f.n++
	f.last = now
	return l.delay(f.n)
}

// delay is the wait after the n-th failure: base, doubling, at most max.
func (l *authLimiter) delay(n int) time.Duration {
	d := l.base
	for i := 1; i < n && d < l.max; i++ {
		d *= 2
	}
	return min(d, l.max)
}

func (l *authLimiter) succeeded(ip string) {
	l.mu.Lock()
	delete(l.fails, ip)
	l.mu.Unlock()
}

func (l *authLimiter) pruneLocked(now time.Time) {
	for ip, f := range l.fails {
		if now.Sub(f.last) > l.window {
			delete(l.fails, ip)
		}
	}
}
