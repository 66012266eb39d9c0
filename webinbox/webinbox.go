// Package webinbox serves the live web inbox: a small page at / on the
// HTTP listener that is a JMAP client of the server's own API (RFC
// 8620/8621, package jmap) and updates itself from the JMAP event stream
// the moment mail arrives, without polling.
//
// The page, its script and its style sheet are embedded in the binary; the
// script uses no library. Logging in sets a session cookie (HttpOnly,
// SameSite=Strict, Secure over TLS) instead of asking the browser to keep
// a password; Authenticate lets the JMAP API accept it. A request that
// changes anything must also carry the session's CSRF token in the
// X-CSRF-Token header, which a page on another site cannot read or set
// (SameSite=Strict keeps the cookie off cross-site requests as well).
// Logins go through the same authlimit.Limiter as IMAP and SMTP.
//
// Messages are shown safely: text with textContent, never as markup; HTML
// only inside an iframe with an empty sandbox (no scripts, no same
// origin) and a Content-Security-Policy that loads nothing remote.
//
// Sessions live in memory: a restart logs everyone out.
package webinbox

import (
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"path"
	"sync"
	"time"

	"pushmail/internal/authlimit"
	"pushmail/mailstore"
)

//go:embed static
var static embed.FS

// CookieName is the session cookie's name.
const CookieName = "pushmail_session"

// CSRFHeader carries the session's CSRF token on every request that
// changes something.
const CSRFHeader = "X-CSRF-Token"

// DefaultSessionTTL is how long a session lasts without use.
const DefaultSessionTTL = 7 * 24 * time.Hour

// maxSessions bounds the sessions held in memory: past it, the one used
// longest ago is dropped.
const maxSessions = 100_000

// pageCSP is the page's Content-Security-Policy: its own script and
// style only, no inline script, connections to its own origin (the API
// and the event stream), nothing framed from elsewhere and no framing of
// it (clickjacking).
const pageCSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; " +
	"frame-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// Options configure a Server.
type Options struct {
	Store  *mailstore.Store
	Logins *authlimit.Limiter // shared with the other protocols
	// AllowInsecureAuth allows logins over plain HTTP from other than a
	// loopback address (behind a TLS-terminating proxy).
	AllowInsecureAuth bool
	SessionTTL        time.Duration // 0: DefaultSessionTTL
	Logger            *slog.Logger
}

// Server serves the page and its login. Create it with New.
type Server struct {
	opts Options
	log  *slog.Logger

	mu       sync.Mutex
	sessions map[string]*session // by cookie value
}

type session struct {
	user     mailstore.User
	csrf     string
	lastUsed time.Time
}

// New returns a Server.
func New(opts Options) *Server {
	if opts.SessionTTL == 0 {
		opts.SessionTTL = DefaultSessionTTL
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Server{opts: opts, log: opts.Logger.With("proto", "http", "component", "webinbox"), sessions: map[string]*session{}}
}

// Register adds the page and its endpoints to mux: GET / (the page), GET
// /webinbox/{file} (script, style), POST /webinbox/login and
// /webinbox/logout, GET /webinbox/whoami.
func (s *Server) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /{$}", s.page)
	mux.HandleFunc("GET /webinbox/{file}", s.file)
	mux.HandleFunc("POST /webinbox/login", s.login)
	mux.HandleFunc("POST /webinbox/logout", s.logout)
	mux.HandleFunc("GET /webinbox/whoami", s.whoami)
}

// securityHeaders are sent with every response of the page's.
func securityHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", pageCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
}

func (s *Server) page(w http.ResponseWriter, r *http.Request) {
	b, err := static.ReadFile("static/index.html")
	if err != nil {
		http.Error(w, "page missing from the binary", http.StatusInternalServerError)
		return
	}
	securityHeaders(w)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Write(b)
}

func (s *Server) file(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("file")
	b, err := fs.ReadFile(static, "static/"+path.Clean(name))
	if err != nil || name == "index.html" {
		http.NotFound(w, r)
		return
	}
	securityHeaders(w)
	w.Header().Set("Content-Type", mime.TypeByExtension(path.Ext(name)))
	w.Write(b)
}

// loginRequest is POST /webinbox/login's body. It must be JSON: a form on
// another site cannot send that without the browser asking first (CORS),
// so nobody can log a visitor in to an account of theirs (login CSRF).
type loginRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// whoamiResponse tells the page who is logged in and its CSRF token.
type whoamiResponse struct {
	Username string `json:"username"`
	CSRF     string `json:"csrf"`
}

// errThrottled: too many failed logins from the address or for the
// account.
var errThrottled = errors.New("too many failed logins")

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		jsonError(w, http.StatusUnsupportedMediaType, "send the login as application/json")
		return
	}
	if !s.authAllowed(r) {
		jsonError(w, http.StatusForbidden, "logins need TLS")
		return
	}
	var req loginRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&req); err != nil {
		jsonError(w, http.StatusBadRequest, "malformed login")
		return
	}
	u, err := s.check(r, req.Username, req.Password)
	switch {
	case errors.Is(err, errThrottled):
		jsonError(w, http.StatusTooManyRequests, "too many failed logins, try again later")
		return
	case errors.Is(err, mailstore.ErrAuthFailed):
		jsonError(w, http.StatusUnauthorized, "wrong address or password")
		return
	case err != nil:
		s.log.Error("web inbox login", "err", err)
		jsonError(w, http.StatusInternalServerError, "login failed: server error")
		return
	}
	token, csrf := randomToken(), randomToken()
	s.mu.Lock()
	if len(s.sessions) >= maxSessions {
		s.evictOldestLocked()
	}
	s.sessions[token] = &session{user: u, csrf: csrf, lastUsed: time.Now()}
	s.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: token, Path: "/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil, MaxAge: int(s.opts.SessionTTL / time.Second)})
	s.log.Info("web inbox login", "user", u.Address, "remote", r.RemoteAddr)
	writeJSON(w, whoamiResponse{Username: u.Address, CSRF: csrf})
}

// check verifies a password under the shared login limiter, waiting out
// the delay a failure earns before it answers.
func (s *Server) check(r *http.Request, username, password string) (mailstore.User, error) {
	ip := clientIP(r)
	account, err := mailstore.NormalizeAddress(username)
	if err != nil {
		account = ""
	}
	if s.opts.Logins != nil && s.opts.Logins.Check(ip, account, time.Now()) != authlimit.Allowed {
		return mailstore.User{}, errThrottled
	}
	u, err := s.opts.Store.Authenticate(r.Context(), username, password)
	if errors.Is(err, mailstore.ErrAuthFailed) && s.opts.Logins != nil {
		delay := s.opts.Logins.Failed(ip, account, time.Now())
		t := time.NewTimer(delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
		}
	}
	if err != nil {
		return mailstore.User{}, err
	}
	if s.opts.Logins != nil {
		s.opts.Logins.Succeeded(ip, account, time.Now())
	}
	return u, nil
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	c, err := r.Cookie(CookieName)
	if err == nil {
		s.mu.Lock()
		if sess := s.sessions[c.Value]; sess != nil && validCSRF(r, sess) {
			delete(s.sessions, c.Value)
		}
		s.mu.Unlock()
	}
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: r.TLS != nil, MaxAge: -1})
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) whoami(w http.ResponseWriter, r *http.Request) {
	sess := s.session(r)
	if sess == nil {
		jsonError(w, http.StatusUnauthorized, "not logged in")
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, whoamiResponse{Username: sess.user.Address, CSRF: sess.csrf})
}

// session returns the live session of r's cookie, and marks it used.
func (s *Server) session(r *http.Request) *session {
	c, err := r.Cookie(CookieName)
	if err != nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sess := s.sessions[c.Value]
	if sess == nil {
		return nil
	}
	if time.Since(sess.lastUsed) > s.opts.SessionTTL {
		delete(s.sessions, c.Value)
		return nil
	}
	sess.lastUsed = time.Now()
	cp := *sess
	return &cp
}

// Authenticate returns the user of r's session cookie, for the JMAP API:
// ok only with a live session and, unless r is a GET or HEAD, the
// session's CSRF token in CSRFHeader.
func (s *Server) Authenticate(r *http.Request) (mailstore.User, bool) {
	sess := s.session(r)
	if sess == nil {
		return mailstore.User{}, false
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead && !validCSRF(r, sess) {
		return mailstore.User{}, false
	}
	return sess.user, true
}

// DropUser ends every session of a deleted user.
func (s *Server) DropUser(id mailstore.UserID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, sess := range s.sessions {
		if sess.user.ID == id {
			delete(s.sessions, k)
		}
	}
}

func validCSRF(r *http.Request, sess *session) bool {
	got := r.Header.Get(CSRFHeader)
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(sess.csrf)) == 1
}

func (s *Server) evictOldestLocked() {
	var oldest string
	var at time.Time
	for k, sess := range s.sessions {
		if oldest == "" || sess.lastUsed.Before(at) {
			oldest, at = k, sess.lastUsed
		}
	}
	delete(s.sessions, oldest)
}

// authAllowed: a password only over TLS, from loopback, or when the
// operator allows it (as for IMAP).
func (s *Server) authAllowed(r *http.Request) bool {
	if r.TLS != nil || s.opts.AllowInsecureAuth {
		return true
	}
	ip := net.ParseIP(clientIP(r))
	return ip != nil && ip.IsLoopback()
}

func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b) // never fails (crypto/rand, Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

func jsonError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}
