package smtpd

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base32"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"pushmail/internal/authlimit"
	"pushmail/internal/membudget"
	"pushmail/internal/tlspolicy"
	"pushmail/mailstore"
)

// DefaultMaxMessageBytes is the default message size limit, announced in
// the SIZE extension (RFC 1870).
const DefaultMaxMessageBytes = 25 << 20 // 25 MiB

// Defaults for the zero fields of Options.
const (
	defaultMaxRecipients = 100
	defaultTimeout       = 5 * time.Minute
	defaultMaxConnsPerIP = 20
	// DefaultMaxConns is the default of Options.MaxConns.
	DefaultMaxConns = 1000
	// DefaultMaxIdleCommands is the default of Options.MaxIdleCommands:
	// a session setting up TLS and AUTH, then checking with a few NOOPs
	// or RSETs, is far from it.
	DefaultMaxIdleCommands = 20
	// DefaultMaxLineLength is the default of Options.MaxLineLength.
	// RFC 5321 §4.5.3.1.4-6 allow 512 octets per command line and 1000
	// per text line, CRLF included, but mail generators ignore it (HTML
	// mail written without line breaks), and refusing such a line bounces
	// the message for good. go-smtp counts line lengths as the bytes
	// stream past, so a long DATA line costs no memory; a command line is
	// buffered, so the limit bounds that per connection.
	DefaultMaxLineLength = 64 << 10
	// minLineLength keeps a configured limit above RFC 5321's 1000-octet
	// text line (§4.5.3.1.6): a server must accept lines that long.
	minLineLength = 1000
)

// Options configures a Server. The zero value is usable: no TLS, the
// defaults below, and slog.Default for logs.
type Options struct {
	// Hostname is used in the greeting and as "by" in Received fields;
	// empty means os.Hostname.
	Hostname string
	// TLSConfig enables STARTTLS (RFC 3207); nil means no STARTTLS. A
	// MinVersion below TLS 1.2 is raised to it (RFC 8996).
	TLSConfig *tls.Config
	// AllowInsecureAuth allows AUTH without TLS on submission connections
	// that are not from a loopback address.
	AllowInsecureAuth bool
	// Logger receives one line per transaction and the causes of
	// temporary failures; nil means slog.Default().
	Logger *slog.Logger
	// MaxMessageBytes is the size limit, announced in SIZE; 0 means
	// DefaultMaxMessageBytes. The trace fields added here come on top.
	MaxMessageBytes int64
	// MaxRecipients per transaction; 0 means 100 (RFC 5321 §4.5.3.1.8
	// asks for at least 100). More get 452 4.5.3.
	MaxRecipients int
	// ReadTimeout and WriteTimeout bound each command read and reply
	// write; 0 means 5 minutes (RFC 5321 §4.5.3.2.7).
	ReadTimeout, WriteTimeout time.Duration
	// MaxConnsPerIP bounds the concurrent connections from one remote IP
	// on each listener; 0 means 20. Unix-socket clients are not counted.
	MaxConnsPerIP int
	// MaxConns bounds the concurrent connections on each listener, from
	// all clients (unix-socket ones included): one flooded listener does
	// not starve the others. 0 means DefaultMaxConns. A connection over
	// MaxConnsPerIP is answered 421 and closed; on a listener at MaxConns
	// or MaxPreAuthConns, a new connection evicts the unauthenticated one
	// quiet longest (see listener), and is refused with 421 only if every
	// connection is authenticated or transferring a message.
	MaxConns int
	// MaxPreAuthConns bounds the connections on each listener that have
	// not authenticated: on the SMTP (MX) and LMTP listeners all of them,
	// on submission those before a successful AUTH. Below MaxConns, it
	// keeps room for authenticated sessions; authenticated connections
	// are never evicted. 0 means MaxConns.
	MaxPreAuthConns int
	// MaxIdleCommands bounds the commands a session may send outside a
	// transaction since its last MAIL (NOOP, RSET, VRFY, HELP, but also
	// EHLO, STARTTLS and AUTH, which a client needs about five of): past
	// it, "421 4.7.0" and the connection is closed. RFC 5321 §4.5.3.2
	// times each command out but sets no bound on their number. 0 means
	// DefaultMaxIdleCommands.
	MaxIdleCommands int
	// MaxLineLength bounds a command line and a line of DATA, in bytes
	// with CRLF; 0 means DefaultMaxLineLength, and less than 1000 is
	// raised to 1000 (RFC 5321 §4.5.3.1.6). A longer line gets "500
	// 5.4.0" and the connection is closed.
	MaxLineLength int
	// AuthLimiter counts failed AUTH attempts per remote IP and per
	// account, delays the replies and then refuses (see package
	// authlimit). Share one with imapd so that guesses over both
	// protocols count together. nil means a limiter of the server's own
	// with authlimit's defaults.
	AuthLimiter *authlimit.Limiter
	// Metrics, if set, receives connection and message counts.
	Metrics *Metrics

	// SpoolThreshold is how many bytes of a message are held in memory
	// while it is received; the rest of a larger one goes to a file in
	// SpoolDir. 0 means DefaultSpoolThreshold.
	SpoolThreshold int64
	// SpoolDir holds the files of messages over SpoolThreshold, one per
	// transfer, removed as soon as it is created (where the system
	// allows) and closed when the transaction ends: nothing is left there,
	// also after a crash. "" means os.TempDir(). The directory must exist.
	SpoolDir string
	// Budget bounds the bytes of messages held in memory, by every
	// session of the server together (SMTP, LMTP and submission) and by
	// whoever else shares it. A transaction that finds it spent is
	// answered "451 4.3.1" (see doc.go). nil means a budget of the
	// server's own, of DefaultInflightBytes.
	Budget *membudget.Budget
}

// Defaults of the memory options.
const (
	// DefaultSpoolThreshold is the default of Options.SpoolThreshold.
	DefaultSpoolThreshold = 1 << 20
	// DefaultInflightBytes is the size of the budget New makes when
	// Options.Budget is nil.
	DefaultInflightBytes = 256 << 20
)

// role is what a listener is for.
type role int

const (
	roleMX         role = iota // inbound SMTP for local domains, no AUTH
	roleLMTP                   // RFC 2033, per-recipient replies
	roleSubmission             // RFC 6409, AUTH required
)

// roleNames are the roles' names, in the order of the constants: the
// "proto" of logs and metrics.
var roleNames = [...]string{"smtp", "lmtp", "submission"}

func (r role) String() string { return roleNames[r] }

// Server receives mail into a mailstore. Create it with New, start it
// with the Serve methods (each may be called for several listeners) and
// stop it with Shutdown. Its methods are safe for concurrent use.
type Server struct {
	store   *mailstore.Store
	opts    Options
	log     *slog.Logger
	servers [3]*smtp.Server // by role
	auth    *authlimit.Limiter

	// loopback decides whether a client's address is local, so that it
	// may authenticate without TLS. Tests replace it, before serving, to
	// play a remote client from 127.0.0.1.
	loopback func(net.Addr) bool
	// onSpool, if set, is called when a transfer moves to a spool file.
	// Tests set it, before serving, to learn that a transfer has passed
	// the spool threshold.
	onSpool func()

	ctx    context.Context // base of every session's context
	cancel context.CancelFunc

	// dataBufs holds idle DATA buffers; see getDataBuf.
	dataBufs chan []byte
	budget   *membudget.Budget

	mu        sync.Mutex
	shut      bool
	listeners []*listener
	conns     map[*conn]struct{}
}

// New returns a Server that delivers into store. It starts nothing.
func New(store *mailstore.Store, opts Options) *Server {
	if opts.Hostname == "" {
		opts.Hostname, _ = os.Hostname() // empty on error, handled next
		if opts.Hostname == "" {
			opts.Hostname = "localhost"
		}
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.MaxMessageBytes <= 0 {
		opts.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if opts.MaxRecipients <= 0 {
		opts.MaxRecipients = defaultMaxRecipients
	}
	if opts.ReadTimeout <= 0 {
		opts.ReadTimeout = defaultTimeout
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = defaultTimeout
	}
	if opts.MaxConnsPerIP <= 0 {
		opts.MaxConnsPerIP = defaultMaxConnsPerIP
	}
	if opts.MaxConns <= 0 {
		opts.MaxConns = DefaultMaxConns
	}
	if opts.MaxPreAuthConns <= 0 || opts.MaxPreAuthConns > opts.MaxConns {
		opts.MaxPreAuthConns = opts.MaxConns
	}
	if opts.MaxIdleCommands <= 0 {
		opts.MaxIdleCommands = DefaultMaxIdleCommands
	}
	if opts.MaxLineLength <= 0 {
		opts.MaxLineLength = DefaultMaxLineLength
	}
	opts.MaxLineLength = max(opts.MaxLineLength, minLineLength)
	if opts.AuthLimiter == nil {
		opts.AuthLimiter = authlimit.New(authlimit.Config{})
	}
	opts.TLSConfig = tlspolicy.Enforce(opts.TLSConfig)
	if opts.SpoolThreshold <= 0 {
		opts.SpoolThreshold = DefaultSpoolThreshold
	}
	if opts.SpoolDir == "" {
		opts.SpoolDir = os.TempDir()
	}
	if opts.Budget == nil {
		opts.Budget = membudget.New(DefaultInflightBytes)
	}
	s := &Server{
		dataBufs: make(chan []byte, dataBufPool),
		budget:   opts.Budget,
		store:    store,
		opts:     opts,
		log:      opts.Logger,
		auth:     opts.AuthLimiter,
		loopback: isLoopback,
		conns:    make(map[*conn]struct{}),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	for r := range s.servers {
		s.servers[r] = s.newSMTPServer(role(r))
	}
	return s
}

func (s *Server) newSMTPServer(r role) *smtp.Server {
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return s.newSession(r, c), nil
	}))
	srv.Domain = s.opts.Hostname
	srv.LMTP = r == roleLMTP
	// No TLSConfig: the connection carries out STARTTLS itself, under
	// go-smtp (starttls.go), from s.opts.TLSConfig.
	srv.MaxMessageBytes = s.opts.MaxMessageBytes
	srv.MaxRecipients = s.opts.MaxRecipients // RFC 5321 §4.5.3.1.10: 452 4.5.3 beyond
	srv.MaxLineLength = s.opts.MaxLineLength
	srv.ReadTimeout = s.opts.ReadTimeout
	srv.WriteTimeout = s.opts.WriteTimeout
	srv.EnableSMTPUTF8 = true // RFC 6531: addresses and headers are stored as UTF-8
	// BINARYMIME (RFC 3030) stays off: go-smtp applies the line length
	// limit to whatever it reads together with a BDAT command, so a binary
	// chunk with no line break near its start would close the connection.
	// CHUNKING of ordinary 8-bit text works and is on (go-smtp's default).
	srv.EnableREQUIRETLS = true // RFC 8689: final delivery, nothing to relay
	// go-smtp would refuse AUTH on every non-TLS connection; the session
	// decides instead (loopback, Options.AllowInsecureAuth), and only the
	// submission session offers AUTH at all.
	srv.AllowInsecureAuth = true
	srv.ErrorLog = errorLog{s.log.With("proto", r.String())}
	return srv
}

// ServeSMTP serves inbound SMTP for the local domains (the MX role) on ln:
// no AUTH, local recipients only. It returns nil after Shutdown, else the
// listener's error. ln is closed when it returns.
func (s *Server) ServeSMTP(ln net.Listener) error { return s.serve(roleMX, ln) }

// ServeLMTP serves LMTP (RFC 2033) on ln, a TCP or unix listener, with a
// reply per recipient after DATA. It returns as ServeSMTP does.
func (s *Server) ServeLMTP(ln net.Listener) error { return s.serve(roleLMTP, ln) }

// ServeSubmission serves message submission (RFC 6409) on ln: AUTH is
// required before MAIL, and recipients must be local. It returns as
// ServeSMTP does.
func (s *Server) ServeSubmission(ln net.Listener) error { return s.serve(roleSubmission, ln) }

func (s *Server) serve(r role, ln net.Listener) error {
	l := &listener{Listener: ln, srv: s, role: r, perIP: make(map[string]int), preAuth: make(map[*conn]struct{})}
	s.mu.Lock()
	if s.shut {
		s.mu.Unlock()
		if err := ln.Close(); err != nil {
			s.log.Debug("close listener after shutdown", "err", err)
		}
		return nil
	}
	s.listeners = append(s.listeners, l)
	s.mu.Unlock()

	err := s.servers[r].Serve(l)
	s.mu.Lock()
	shut := s.shut
	s.mu.Unlock()
	if shut {
		return nil // the listener was closed by Shutdown
	}
	if cerr := ln.Close(); cerr != nil && !errors.Is(cerr, net.ErrClosed) {
		s.log.Debug("close listener", "err", cerr)
	}
	return fmt.Errorf("smtpd: serve %s: %w", r, err)
}

// Shutdown stops the server: it closes the listeners, closes idle
// connections (they read "421"), and waits for transactions in progress
// to finish, closing each connection after its reply. If ctx ends first,
// the remaining connections are closed at once and ctx's error is
// returned. The Serve methods then return nil. Shutdown may be called
// more than once; later calls return nil at once.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if s.shut {
		s.mu.Unlock()
		return nil
	}
	s.shut = true
	listeners := s.listeners
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()

	var errs []error
	for _, l := range listeners {
		if err := l.Listener.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, fmt.Errorf("smtpd: close %s listener: %w", l.role, err))
		}
	}
	for _, c := range conns {
		c.drain()
	}
	for _, srv := range s.servers {
		// go-smtp's Shutdown waits for its connection goroutines; its
		// error is the listeners' second close, already reported above.
		if err := srv.Shutdown(ctx); err != nil && ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
			s.log.Debug("go-smtp shutdown", "err", err)
		}
		if ctx.Err() != nil {
			s.forceClose()
			return ctx.Err()
		}
	}
	s.cancel()
	return errors.Join(errs...)
}

// forceClose closes every connection still open and cancels the sessions'
// contexts, so that waiting store calls give up.
func (s *Server) forceClose() {
	s.mu.Lock()
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.abort() // close at once: no waiting to send held-back replies
		if err := c.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			s.log.Debug("close connection", "cid", c.cid, "err", err)
		}
	}
	s.cancel()
}

// track registers a new connection; it is drained at once if Shutdown
// has begun.
func (s *Server) track(c *conn) {
	s.mu.Lock()
	s.conns[c] = struct{}{}
	shut := s.shut
	s.mu.Unlock()
	if shut {
		c.drain()
	}
}

func (s *Server) untrack(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// isLoopback reports whether a is a loopback IP or a unix socket peer.
func isLoopback(a net.Addr) bool {
	switch a := a.(type) {
	case *net.TCPAddr:
		return a.IP.IsLoopback()
	case *net.UnixAddr:
		return true
	}
	return false
}

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// newID returns a random connection id, 13 characters of base32.
func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return idEncoding.EncodeToString(b[:])
}

// errorLog passes go-smtp's internal messages to slog: panics at Error,
// the rest (mostly clients that went away) at Debug.
type errorLog struct{ log *slog.Logger }

func (e errorLog) Printf(format string, v ...any) { e.print(fmt.Sprintf(format, v...)) }
func (e errorLog) Println(v ...any)               { e.print(fmt.Sprintln(v...)) }

func (e errorLog) print(msg string) {
	msg = strings.TrimSpace(msg)
	if strings.HasPrefix(msg, "panic") {
		e.log.Error("go-smtp: "+msg, "source", "go-smtp")
		return
	}
	e.log.Debug("go-smtp: "+msg, "source", "go-smtp")
}
