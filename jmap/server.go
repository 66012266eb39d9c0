package jmap

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"sync"
	"time"

	"pushmail/internal/authlimit"
	"pushmail/internal/fanout"
	"pushmail/internal/hibernate"
	"pushmail/mailstore"
)

// Limits are the RFC 8620 §2 core capability limits: advertised in the
// session resource and enforced. Zero fields take the defaults.
type Limits struct {
	MaxSizeUpload         int64 // bytes of one upload (default 50 MiB)
	MaxConcurrentUpload   int   // per user (default 4)
	MaxSizeRequest        int64 // bytes of one API request (default 10 MiB)
	MaxConcurrentRequests int   // per user (default 4)
	MaxCallsInRequest     int   // method calls in one request (default 32)
	MaxObjectsInGet       int   // ids in one /get (default 500)
	MaxObjectsInSet       int   // create + update + destroy in one /set (default 500)
}

func (l Limits) withDefaults() Limits {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	if l.MaxSizeUpload <= 0 {
		l.MaxSizeUpload = 50 << 20
	}
	if l.MaxSizeRequest <= 0 {
		l.MaxSizeRequest = 10 << 20
	}
	def(&l.MaxConcurrentUpload, 4)
	def(&l.MaxConcurrentRequests, 4)
	def(&l.MaxCallsInRequest, 32)
	def(&l.MaxObjectsInGet, 500)
	def(&l.MaxObjectsInSet, 500)
	return l
}

// Options configure a Server.
type Options struct {
	// Logger receives the server's logs; nil means slog.Default().
	Logger *slog.Logger
	// AuthLimiter counts failed logins; share the one of the other
	// protocols so that guesses over any of them count together. Nil:
	// a limiter of this server's own, with the defaults.
	AuthLimiter *authlimit.Limiter
	// AllowInsecureAuth accepts passwords over plain HTTP from any
	// address; otherwise only over TLS or from loopback (DESIGN §5).
	AllowInsecureAuth bool
	// Limits are the request limits; zero fields take the defaults.
	Limits Limits
	// SessionAuth, if set, authenticates a request by other means than
	// HTTP Basic: the web inbox's session cookie (webinbox.Authenticate).
	// A request it accepts is that user's; one it does not accept goes
	// on to Basic.
	SessionAuth func(*http.Request) (mailstore.User, bool)
	// VAPIDPublicKey, if set, is advertised in the session as RFC 9749's
	// urn:ietf:params:jmap:webpush-vapid capability, for Web Push
	// subscriptions (package wakeup signs with its private half).
	VAPIDPublicKey string
	// PingMin is the lowest ping interval the event stream accepts;
	// a client asking for less gets this (RFC 8620 §7.3: "the server
	// MAY choose a minimum value"). Default 1s.
	PingMin time.Duration
	// KeepStreamsAwake serves every event stream on its own goroutine
	// inside net/http, as TLS streams are served, instead of parking
	// plain-HTTP ones between events (parked.go); for comparison in
	// tests and benchmarks.
	KeepStreamsAwake bool
}

// Server serves the HTTP API. Create it with New, mount Handler on an
// HTTP server, and Close it before that server's Shutdown: open event
// streams only end when Close asks them to. It is safe for concurrent
// use.
type Server struct {
	store  *mailstore.Store
	log    *slog.Logger
	logins *authlimit.Limiter
	opts   Options
	limits Limits

	ctx    context.Context // ends at Close: event streams stop
	cancel context.CancelFunc

	mu        sync.Mutex
	requests  map[mailstore.UserID]int // API requests in progress
	uploading map[mailstore.UserID]int // uploads in progress
	blobs     *blobStore
	feeds     map[mailstore.UserID]*feed // event stream feeds, by account
	closed    bool                       // Close was called: no new parked stream

	// Parked event streams (parked.go): the readiness loop they sleep
	// in, the workers that write events to them, and the count of those
	// alive, which Close waits for (net/http's Shutdown does not know
	// them).
	loop    *hibernate.Loop
	pool    *fanout.Pool[struct{}]
	streams sync.WaitGroup
}

// New returns a Server over store.
func New(store *mailstore.Store, opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.AuthLimiter == nil {
		opts.AuthLimiter = authlimit.New(authlimit.Config{})
	}
	if opts.PingMin <= 0 {
		opts.PingMin = time.Second
	}
	ctx, cancel := context.WithCancel(context.Background())
	limits := opts.Limits.withDefaults()
	return &Server{
		store:     store,
		log:       opts.Logger.With("proto", "jmap"),
		logins:    opts.AuthLimiter,
		opts:      opts,
		limits:    limits,
		ctx:       ctx,
		cancel:    cancel,
		requests:  map[mailstore.UserID]int{},
		uploading: map[mailstore.UserID]int{},
		blobs:     newBlobStore(4 * limits.MaxSizeUpload),
		feeds:     map[mailstore.UserID]*feed{},
		loop:      hibernate.New(opts.Logger),
		pool:      fanout.New(runtime.GOMAXPROCS(0), func() struct{} { return struct{}{} }),
	}
}

// Close ends every open event stream; requests already running finish.
// It waits for the parked streams (parked.go), which net/http no longer
// knows, to end; the HTTP server's Shutdown waits for the handlers.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	// The Loop wakes every parked stream (Stopped), whose goroutine
	// ends it; an awake one sees the context. Then the workers stop.
	if err := s.loop.Close(); err != nil {
		s.log.Error("event source: close the readiness loop", "err", err)
	}
	// A stream blocked writing to a client that reads nothing ends now,
	// not at streamWriteTimeout (parkedStream.write checks the context
	// after it sets its own deadline, so this one comes last).
	s.mu.Lock()
	for _, f := range s.feeds {
		f.mu.Lock()
		for p := range f.parked {
			if err := p.conn.SetWriteDeadline(time.Now()); err != nil {
				s.log.Debug("event source: cut a write short", "err", err)
			}
		}
		f.mu.Unlock()
	}
	s.mu.Unlock()
	s.pool.Close()
	s.streams.Wait()
}

// Register mounts the API's routes on mux: the session resource at
// /.well-known/jmap (RFC 8620 §2.2) and the rest under /jmap/.
func (s *Server) Register(mux *http.ServeMux) {
	mux.Handle("GET /.well-known/jmap", s.authed(s.serveSession))
	mux.Handle("POST /jmap/api", s.authed(s.serveAPI))
	mux.Handle("POST /jmap/upload/{accountId}/", s.authed(s.serveUpload))
	mux.Handle("GET /jmap/download/{accountId}/{blobId}/{name}", s.authed(s.serveDownload))
	mux.Handle("GET /jmap/eventsource", s.authed(s.serveEvents))
}

// user is an authenticated request's account.
type user struct {
	mailstore.User
}

// authed wraps h with HTTP Basic authentication (RFC 7617) against the
// store's passwords, throttled like every other login.
func (s *Server) authed(h func(w http.ResponseWriter, r *http.Request, u *user)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.authAllowed(r) {
			// RFC 8620 §8.2: credentials only over TLS; loopback is
			// pushmail's exception, as for IMAP.
			problem(w, http.StatusForbidden, "about:blank", "Authentication requires TLS", nil)
			return
		}
		if s.opts.SessionAuth != nil {
			if u, ok := s.opts.SessionAuth(r); ok {
				h(w, r, &user{User: u})
				return
			}
		}
		name, password, ok := r.BasicAuth()
		if !ok {
			w.Header().Set("WWW-Authenticate", `Basic realm="pushmail", charset="UTF-8"`)
			problem(w, http.StatusUnauthorized, "about:blank", "Authentication required", nil)
			return
		}
		u, err := s.login(r, name, password)
		if err != nil {
			if errors.Is(err, errThrottled) {
				problem(w, http.StatusTooManyRequests, "about:blank", "Too many failed logins; try later", nil)
				return
			}
			if errors.Is(err, mailstore.ErrAuthFailed) {
				w.Header().Set("WWW-Authenticate", `Basic realm="pushmail", charset="UTF-8"`)
				problem(w, http.StatusUnauthorized, "about:blank", "Authentication failed", nil)
				return
			}
			s.log.Error("login", "err", err)
			problem(w, http.StatusInternalServerError, "about:blank", "Server error", nil)
			return
		}
		h(w, r, u)
	})
}

var errThrottled = errors.New("too many failed logins")

// login checks a password as imapd and pop3d do: the limiter first,
// then the store, a failure answered after the limiter's delay.
func (s *Server) login(r *http.Request, name, password string) (*user, error) {
	ip := remoteIP(r)
	account, err := mailstore.NormalizeAddress(name)
	if err != nil {
		account = ""
	}
	if v := s.logins.Check(ip, account, time.Now()); v != authlimit.Allowed {
		s.log.Info("login refused: too many failures", "user", name, "why", v.String(), "remote", ip)
		return nil, errThrottled
	}
	u, err := s.store.Authenticate(r.Context(), name, password)
	if errors.Is(err, mailstore.ErrAuthFailed) {
		delay := s.logins.Failed(ip, account, time.Now())
		s.log.Info("login failed", "user", name, "delay", delay, "remote", ip)
		t := time.NewTimer(delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
		}
		return nil, err
	}
	if err != nil {
		return nil, err
	}
	s.logins.Succeeded(ip, account, time.Now())
	return &user{User: u}, nil
}

func (s *Server) authAllowed(r *http.Request) bool {
	if s.opts.AllowInsecureAuth || r.TLS != nil {
		return true
	}
	ip := net.ParseIP(remoteIP(r))
	return ip != nil && ip.IsLoopback()
}

func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// acquire takes one of the user's slots in table (requests or
// uploads), false when all max are taken; release gives it back.
func (s *Server) acquire(table map[mailstore.UserID]int, u mailstore.UserID, max int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if table[u] >= max {
		return false
	}
	table[u]++
	return true
}

func (s *Server) release(table map[mailstore.UserID]int, u mailstore.UserID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if table[u]--; table[u] <= 0 {
		delete(table, u)
	}
}
