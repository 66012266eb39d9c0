package pop3d

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"pushmail/internal/authlimit"
	"pushmail/internal/connslots"
	"pushmail/internal/netkey"
	"pushmail/internal/tlspolicy"
	"pushmail/mailstore"
)

// Defaults of the limits in Options.
const (
	// DefaultMaxConnsPerIP bounds the connections of one client address.
	DefaultMaxConnsPerIP = 64
	// DefaultMaxConns bounds the connections of the whole Server.
	DefaultMaxConns = 1000
	// DefaultCommandTimeout bounds the wait for a command before login
	// and the time to send the rest of any command line.
	DefaultCommandTimeout = 30 * time.Second
	// DefaultIdleTimeout is how long a logged-in client may be silent.
	// RFC 1939 §3: an inactivity autologout timer "MUST be of at least
	// 10 minutes' duration".
	DefaultIdleTimeout = 10 * time.Minute
	// DefaultLoginTimeout bounds the time from connecting to logging in.
	DefaultLoginTimeout = time.Minute
	// MinIdleTimeout is RFC 1939 §3's floor for IdleTimeout.
	MinIdleTimeout = 10 * time.Minute
)

// Options configures a Server. The zero value is usable: no STLS,
// passwords only over TLS or from loopback, slog.Default logging.
type Options struct {
	// TLSConfig enables STLS (RFC 2595 §4). nil: no STLS. Implicit TLS is
	// ServeTLS's. A MinVersion below TLS 1.2 is raised to it (RFC 8996).
	TLSConfig *tls.Config
	// AllowInsecureAuth allows USER/PASS and AUTH without TLS on
	// non-loopback connections (RFC 2595 §2 advises against it).
	AllowInsecureAuth bool
	// Logger receives the server's logs; nil means slog.Default().
	Logger *slog.Logger
	// MaxConnsPerIP bounds the simultaneous connections from one client
	// address (an IPv4 address or an IPv6 /64, netkey.Of), over all
	// listeners; 0 means DefaultMaxConnsPerIP, negative no limit.
	MaxConnsPerIP int
	// MaxConns bounds the simultaneous connections of the Server, over
	// all listeners; 0 means DefaultMaxConns, negative no limit.
	MaxConns int
	// MaxPreAuthConns bounds the connections that have not logged in;
	// 0, or more than MaxConns, means MaxConns. A newcomer that finds
	// either limit reached takes the slot of the oldest connection not
	// logged in, which is told "-ERR [SYS/TEMP]" and closed; only when
	// every connection has logged in is the newcomer refused.
	MaxPreAuthConns int
	// CommandTimeout bounds the wait for a command before login, and
	// the time to send the rest of any command line once begun; 0 means
	// DefaultCommandTimeout.
	CommandTimeout time.Duration
	// IdleTimeout is how long a logged-in client may be silent between
	// commands; 0 means DefaultIdleTimeout. RFC 1939 §3 asks for at
	// least 10 minutes; shorter values are for tests.
	IdleTimeout time.Duration
	// LoginTimeout bounds the time from connecting to logging in,
	// however busy the client keeps the connection; 0 means
	// DefaultLoginTimeout.
	LoginTimeout time.Duration
	// AuthLimiter counts failed logins per client IP and per account,
	// delays the replies and then refuses (package authlimit). Share one
	// with smtpd and imapd so that guesses over every protocol count
	// together. nil means a limiter of the server's own.
	AuthLimiter *authlimit.Limiter
	// Metrics, if set, receives session and message counts.
	Metrics *Metrics
}

// Server is a POP3 server over a mailstore. Create it with New, run it
// with Serve and ServeTLS (on as many listeners as needed) and stop it
// with Shutdown. It is safe for concurrent use.
type Server struct {
	store  *mailstore.Store
	opts   Options
	log    *slog.Logger
	logins *authlimit.Limiter

	baseCtx context.Context // parent of every session's context
	cancel  context.CancelFunc
	nextID  atomic.Uint64

	mu        sync.Mutex
	closed    bool
	listeners map[net.Listener]struct{}
	sessions  map[*session]struct{} // every admitted session until its Close
	slots     *connslots.Table[*session]
	wg        sync.WaitGroup // one count per admitted session
	byes      sync.WaitGroup // one per goodbye being written by another goroutine
	conns     sync.WaitGroup // one per connection's goroutine
}

// New returns a Server for store. It does not listen: call Serve.
func New(store *mailstore.Store, opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.MaxConnsPerIP == 0 {
		opts.MaxConnsPerIP = DefaultMaxConnsPerIP
	}
	if opts.MaxConns == 0 {
		opts.MaxConns = DefaultMaxConns
	}
	if opts.MaxPreAuthConns <= 0 || (opts.MaxConns > 0 && opts.MaxPreAuthConns > opts.MaxConns) {
		opts.MaxPreAuthConns = opts.MaxConns
	}
	if opts.CommandTimeout <= 0 {
		opts.CommandTimeout = DefaultCommandTimeout
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = DefaultIdleTimeout
	}
	if opts.LoginTimeout <= 0 {
		opts.LoginTimeout = DefaultLoginTimeout
	}
	if opts.AuthLimiter == nil {
		opts.AuthLimiter = authlimit.New(authlimit.Config{})
	}
	opts.TLSConfig = tlspolicy.Enforce(opts.TLSConfig)
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{
		store:     store,
		opts:      opts,
		log:       opts.Logger.With("proto", "pop3"),
		logins:    opts.AuthLimiter,
		baseCtx:   ctx,
		cancel:    cancel,
		listeners: make(map[net.Listener]struct{}),
		sessions:  make(map[*session]struct{}),
		slots:     connslots.New[*session](connslots.Limits{MaxConns: opts.MaxConns, MaxPerKey: opts.MaxConnsPerIP, MaxPreAuth: opts.MaxPreAuthConns}),
	}
}

// Shutdown stops the server: it closes the listeners, cancels every
// session's context, tells each client "-ERR [SYS/TEMP] Server shutting
// down" once its command (a QUIT's store write included) is answered,
// closes the connections and waits until all sessions have ended or ctx
// is done; then it closes whatever is left and returns ctx's error, if
// any. A session that had not reached QUIT deletes nothing.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	for ln := range s.listeners {
		if err := ln.Close(); err != nil {
			s.log.Debug("close listener", "err", err)
		}
	}
	sessions := make([]*session, 0, len(s.sessions))
	for sess := range s.sessions {
		sessions = append(sessions, sess)
	}
	s.mu.Unlock()

	s.cancel()
	for _, sess := range sessions {
		s.byes.Go(func() { sess.bye("Server shutting down") })
	}
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	for _, sess := range sessions {
		if cerr := sess.raw.Close(); cerr != nil && !errors.Is(cerr, net.ErrClosed) {
			s.log.Debug("close", "cid", sess.id, "err", cerr)
		}
	}
	<-done
	s.byes.Wait()
	s.conns.Wait()
	return err
}

// admit gives sess a slot, or returns the -ERR text that refuses it. A
// client network at MaxConnsPerIP is refused. A Server at MaxConns, or
// at MaxPreAuthConns connections not logged in, takes the slot of the
// oldest connection not logged in and returns it for evict; only when
// every connection has logged in is the newcomer refused. So silent
// connections cannot keep clients out.
func (s *Server) admit(sess *session) (victim *session, refusal string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, "Server shutting down"
	}
	victim, _, refused := s.slots.Admit(sess, sess.limitKey, sess.start)
	switch refused {
	case connslots.TooManyFromKey:
		s.log.Info("too many connections from one address", "remote", sess.ip, "max_conns_per_ip", s.opts.MaxConnsPerIP)
		s.opts.Metrics.connRefused(refusedPerIP)
		return nil, "Too many connections from your address"
	case connslots.Full:
		s.log.Info("too many connections", "remote", sess.ip, "max_conns", s.opts.MaxConns)
		s.opts.Metrics.connRefused(refusedFull)
		return nil, "Too many connections, try again later"
	}
	s.sessions[sess] = struct{}{}
	s.wg.Add(1)
	s.opts.Metrics.sessionOpened()
	return victim, ""
}

// evict tells a session whose slot admit gave away to go, on a goroutine
// that Shutdown waits for; a login under way fails (see loggedIn).
func (s *Server) evict(victim *session) {
	victim.log.Info("connection evicted for a new one")
	s.opts.Metrics.connEvicted()
	s.byes.Go(func() { victim.bye("Server full, connection closed") })
}

// loggedIn moves sess out of the connections not logged in. It returns
// false if sess was evicted meanwhile: the login must then fail.
func (s *Server) loggedIn(sess *session) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.slots.LoggedIn(sess)
}

// endSession frees sess's slot and forgets it; called once, from Close.
func (s *Server) endSession(sess *session) {
	s.mu.Lock()
	s.slots.Release(sess)
	delete(s.sessions, sess)
	s.mu.Unlock()
	s.wg.Done()
}

// limitKey is the connection limits' key for a peer (netkey.Of). Other
// addresses (a unix socket, a test's pipe) are their own key.
func limitKey(addr net.Addr) string {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok {
		return remoteIP(addr)
	}
	return netkey.Of(tcp.IP)
}

// remoteIP returns the IP of addr as text, or addr's string if it has none.
func remoteIP(addr net.Addr) string {
	if tcp, ok := addr.(*net.TCPAddr); ok {
		return tcp.IP.String()
	}
	if host, _, err := net.SplitHostPort(addr.String()); err == nil {
		return host
	}
	return addr.String()
}
