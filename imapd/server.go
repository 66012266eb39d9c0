package imapd

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"

	"pushmail/internal/authlimit"
	"pushmail/internal/connslots"
	"pushmail/internal/fanout"
	"pushmail/internal/hibernate"
	"pushmail/internal/membudget"
	"pushmail/internal/netkey"
	"pushmail/internal/tlspolicy"
	"pushmail/mailstore"
)

// DefaultAppendLimit is the largest message APPEND accepts when
// Options.AppendLimit is 0.
const DefaultAppendLimit = 25 << 20

// DefaultMaxConnsPerIP bounds the connections one client address may hold
// open when Options.MaxConnsPerIP is 0.
const DefaultMaxConnsPerIP = 64

// Defaults of the limits in Options.
const (
	// DefaultMaxConns bounds the connections of the whole Server.
	DefaultMaxConns = 1000
	// DefaultCommandTimeout is go-imap's own: for the first byte of a
	// command before login, and for the rest of any command line.
	DefaultCommandTimeout = 30 * time.Second
	// DefaultIdleTimeout is go-imap's own for a logged-in client between
	// commands and in IDLE. RFC 9051 §5.4 asks for at least 30 minutes.
	DefaultIdleTimeout = 35 * time.Minute
	// DefaultLoginTimeout bounds the time from connecting to logging in.
	DefaultLoginTimeout = time.Minute
	// DefaultInflightBytes is the size of the budget New makes when
	// Options.Budget is nil.
	DefaultInflightBytes = 256 << 20
)

// Options configures a Server. The zero value is usable: no STARTTLS,
// password authentication only over TLS or loopback, slog.Default logging.
type Options struct {
	// TLSConfig enables STARTTLS (RFC 9051 §6.2.1). nil: no STARTTLS.
	// Implicit TLS is ServeTLS's. A MinVersion below TLS 1.2 is raised to
	// it (RFC 8996).
	TLSConfig *tls.Config
	// AllowInsecureAuth allows LOGIN and AUTHENTICATE without TLS on
	// non-loopback connections (RFC 9051 §11.1 says a server should not).
	AllowInsecureAuth bool
	// Logger receives the server's logs; nil means slog.Default().
	Logger *slog.Logger
	// AppendLimit is the largest message APPEND accepts, in bytes
	// (RFC 7889 APPENDLIMIT); 0 means DefaultAppendLimit.
	AppendLimit uint32
	// MaxConnsPerIP bounds the simultaneous connections from one client
	// address (an IPv4 address, or an IPv6 /64: see limitKey), over all
	// listeners; 0 means DefaultMaxConnsPerIP, negative means no limit.
	// A connection over it is greeted "* BYE [LIMIT]".
	MaxConnsPerIP int
	// MaxConns bounds the simultaneous connections of the Server, over
	// all listeners; 0 means DefaultMaxConns, negative means no limit.
	MaxConns int
	// MaxPreAuthConns bounds the connections that have not logged in;
	// 0, or more than MaxConns, means MaxConns. When a new connection
	// finds MaxConns or MaxPreAuthConns reached, the oldest connection
	// not logged in is told "* BYE [UNAVAILABLE]" and closed to make room
	// (see admit); only when there is none is the newcomer greeted
	// "* BYE [LIMIT]".
	MaxPreAuthConns int
	// CommandTimeout bounds the wait for a client's first command byte
	// before login, and the time to send any command line once begun;
	// 0 means DefaultCommandTimeout.
	CommandTimeout time.Duration
	// IdleTimeout is how long a logged-in client may be silent, between
	// commands or in IDLE, before it is disconnected; 0 means
	// DefaultIdleTimeout. RFC 9051 §5.4 asks for at least 30 minutes;
	// shorter values are for tests.
	IdleTimeout time.Duration
	// LoginTimeout bounds the time from connecting to logging in, however
	// busy the client keeps the connection; 0 means DefaultLoginTimeout.
	LoginTimeout time.Duration
	// AuthLimiter counts failed logins per client IP and per account,
	// delays the replies and then refuses (see package authlimit). Share
	// one with smtpd so that guesses over both protocols count together.
	// nil means a limiter of the server's own with authlimit's defaults.
	AuthLimiter *authlimit.Limiter
	// Budget bounds the bytes of APPEND messages held in memory (see
	// append.go). Share one with smtpd so that messages arriving over
	// both protocols together stay within it. An APPEND that finds it
	// spent is answered NO [LIMIT]. nil means a budget of the server's
	// own, of DefaultInflightBytes.
	Budget *membudget.Budget
	// Metrics, if set, receives session counts and push latencies.
	Metrics *Metrics
	// Hibernate lets a session in IDLE with nothing to send sleep
	// without a goroutine or buffers, in a readiness loop of the
	// Server's (internal/hibernate), until the client sends something,
	// its mailbox changes, IdleTimeout passes or the Server shuts down;
	// it then wakes and carries on as if it had never slept. Plaintext
	// connections on Linux only: TLS sessions stay awake.
	Hibernate bool
	// NotifyQueue is how many events a session with NOTIFY set (RFC
	// 5465) may have pending before it has fallen behind: it is then
	// told NOTIFICATIONOVERFLOW and NOTIFY is turned off (notify.go).
	// 0 means DefaultNotifyQueue.
	NotifyQueue int

	// Test seams (pushdirect.go): noDirectPush wakes a hibernating
	// session for every event, as before direct push; directWriteMax,
	// if positive, makes a direct push's write take at most that many
	// bytes, as a socket whose buffer is full.
	noDirectPush   bool
	directWriteMax int
}

// Server is an IMAP server over a mailstore. Create it with New, run it
// with Serve (on as many listeners as needed) and stop it with Shutdown.
// It is safe for concurrent use.
type Server struct {
	store  *mailstore.Store
	opts   Options
	log    *slog.Logger
	logins *authlimit.Limiter

	baseCtx context.Context // parent of every session's context
	cancel  context.CancelFunc
	nextID  atomic.Uint64

	// hib holds the hibernating sessions (Options.Hibernate); nil if off.
	hib *hibernate.Loop
	// push writes events to hibernating sessions (pushdirect.go); nil
	// without hib, or if noDirectPush.
	push *fanout.Pool[*pushScratch]
	// Connection buffers, shared between sessions: a hibernating or
	// closed session gives its own back.
	readers, writers sync.Pool
	// COMPRESS's *flate.Writer and *bytes.Buffer, taken for one write
	// (compress.go).
	deflaters, deflateBufs sync.Pool

	mu        sync.Mutex
	closed    bool
	listeners map[net.Listener]struct{}
	sessions  map[*session]struct{} // every session until its Close
	slots     *connslots.Table[*session]
	wg        sync.WaitGroup // one count per open session
	evictions sync.WaitGroup // one per eviction's BYE being written
	conns     sync.WaitGroup // one per connection's goroutine
}

// New returns a Server for store. It does not listen: call Serve.
func New(store *mailstore.Store, opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.AppendLimit == 0 {
		opts.AppendLimit = DefaultAppendLimit
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
	if opts.NotifyQueue <= 0 {
		opts.NotifyQueue = DefaultNotifyQueue
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
	if opts.Budget == nil {
		opts.Budget = membudget.New(DefaultInflightBytes)
	}
	opts.TLSConfig = tlspolicy.Enforce(opts.TLSConfig)
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		store:     store,
		opts:      opts,
		log:       opts.Logger.With("proto", "imap"),
		logins:    opts.AuthLimiter,
		baseCtx:   ctx,
		cancel:    cancel,
		listeners: make(map[net.Listener]struct{}),
		sessions:  make(map[*session]struct{}),
		slots:     connslots.New[*session](connslots.Limits{MaxConns: opts.MaxConns, MaxPerKey: opts.MaxConnsPerIP, MaxPreAuth: opts.MaxPreAuthConns}),
	}
	s.readers.New = func() any { return bufio.NewReaderSize(nil, readBufSize) }
	s.writers.New = func() any { return bufio.NewWriterSize(nil, writeBufSize) }
	if opts.Hibernate {
		s.hib = hibernate.New(s.log)
		if !opts.noDirectPush {
			s.push = newPushPool()
		}
	}
	return s
}

// Shutdown stops the server: it closes the listeners, cancels every
// session's context (an IDLE ends), says "* BYE" to every client, closes
// the connections and waits until all sessions have ended or ctx is done;
// then it closes whatever is left and returns ctx's error, if any.
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
	if s.hib != nil {
		// Wakes every hibernating session, which then finds its context
		// done, and stops the loop; no session hibernates after this.
		if err := s.hib.Close(); err != nil {
			s.log.Error("hibernate: close", "err", err)
		}
	}
	if s.push != nil {
		// What is queued finds its sessions woken, and leaves them.
		s.push.Close()
	}
	var byes sync.WaitGroup
	for _, sess := range sessions {
		// bye waits for a command's responses being written, then closes.
		byes.Go(func() { sess.bye("Server shutting down") })
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
	// Close what is still open (one stuck writing); sessions then end at
	// once.
	for _, sess := range sessions {
		if cerr := sess.raw.Close(); cerr != nil && !errors.Is(cerr, net.ErrClosed) {
			s.log.Debug("close", "cid", sess.id, "err", cerr)
		}
	}
	<-done
	byes.Wait()
	s.evictions.Wait()
	s.conns.Wait()
	return err
}

// admit gives sess a slot, or returns the BYE that refuses it. A client
// network at MaxConnsPerIP is refused: its own connections are its
// budget. A Server at MaxConns, or at MaxPreAuthConns connections not
// logged in, makes room by taking the slot of the oldest connection not
// logged in, which it returns for evict; only when every connection has
// logged in is the newcomer refused. So connections that say nothing
// cannot keep the Server full: each newcomer pushes out the oldest of
// them, and a client that logs in within LoginTimeout keeps its place.
func (s *Server) admit(sess *session) (victim *session, refusal *imap.Error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, &imap.Error{Type: imap.StatusResponseTypeBye, Text: "Server shutting down"}
	}
	victim, _, refused := s.slots.Admit(sess, sess.limitKey, sess.start)
	switch refused {
	case connslots.TooManyFromKey:
		s.log.Info("too many connections from one address", "remote", sess.ip, "max_conns_per_ip", s.opts.MaxConnsPerIP)
		s.opts.Metrics.connRefused(refusedPerIP)
		// RFC 5530 §3: LIMIT, such as the number of concurrent connections.
		return nil, &imap.Error{Type: imap.StatusResponseTypeBye, Code: imap.ResponseCodeLimit, Text: "Too many connections from your address"}
	case connslots.Full:
		s.log.Info("too many connections", "remote", sess.ip, "max_conns", s.opts.MaxConns)
		s.opts.Metrics.connRefused(refusedFull)
		return nil, &imap.Error{Type: imap.StatusResponseTypeBye, Code: imap.ResponseCodeLimit, Text: "Too many connections, try again later"}
	}
	s.sessions[sess] = struct{}{}
	s.wg.Add(1)
	s.opts.Metrics.sessionOpened()
	return victim, nil
}

// evict tells a session whose slot admit gave away to go, and closes its
// connection; its Login, if one is under way, fails (see loggedIn). The
// BYE is written on a goroutine of its own, which Shutdown waits for:
// the BYE waits for a response being written to the evicted client,
// which may not be reading, and the newcomer's greeting must not wait
// for that.
func (s *Server) evict(victim *session) {
	victim.log.Info("connection evicted to make room", "age", time.Since(victim.start).Round(time.Millisecond),
		"max_conns", s.opts.MaxConns, "max_preauth_conns", s.opts.MaxPreAuthConns)
	s.opts.Metrics.connEvicted()
	s.evictions.Go(func() {
		// RFC 5530 §3: UNAVAILABLE, a temporary failure.
		victim.cancel()
		victim.byeCode(wireCode(imap.ResponseCodeUnavailable), "Server full, try again later")
	})
}

// loggedIn moves sess out of the connections not logged in, where admit
// can no longer evict it; false if admit already has.
func (s *Server) loggedIn(sess *session) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.slots.LoggedIn(sess)
}

// releaseSlot frees sess's slot as its session ends, before the last
// response: a client that reconnects on reading it finds the slot free.
func (s *Server) releaseSlot(sess *session) {
	s.mu.Lock()
	s.slots.Release(sess)
	s.mu.Unlock()
}

// endSession forgets a closed session.
func (s *Server) endSession(sess *session) {
	s.mu.Lock()
	delete(s.sessions, sess)
	s.slots.Release(sess)
	s.mu.Unlock()
	s.wg.Done()
}

// connCounter finds the countingConn under nc (under TLS); nil if there
// is none.
func connCounter(nc net.Conn) *countingConn {
	if t, ok := nc.(*tls.Conn); ok {
		nc = t.NetConn()
	}
	if r, ok := nc.(*recordConn); ok {
		nc = r.Conn
	}
	c, _ := nc.(*countingConn)
	return c
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
