package webinbox

import (
	"context"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"pushmail/internal/authlimit"
	"pushmail/mailstore"
)

func newTestServer(t *testing.T) (*Server, *httptest.Server) {
	t.Helper()
	store, err := mailstore.Open(context.Background(), filepath.Join(t.TempDir(), "store.db"), mailstore.Options{PasswordCost: bcrypt.MinCost})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	if _, err := store.AddUser(context.Background(), "alice@localhost", "secret"); err != nil {
		t.Fatal(err)
	}
	s := New(Options{Store: store, Logins: authlimit.New(authlimit.Config{PerIP: 3, Delay: time.Millisecond})})
	mux := http.NewServeMux()
	s.Register(mux)
	// A stand-in for the JMAP API: it answers who Authenticate says.
	mux.HandleFunc("/api", func(w http.ResponseWriter, r *http.Request) {
		u, ok := s.Authenticate(r)
		if !ok {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Write([]byte(u.Address))
	})
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	return s, ts
}

func client(t *testing.T) *http.Client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar}
}

func do(t *testing.T, c *http.Client, method, url, body string, header map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := res.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return res, b.String()
}

var jsonType = map[string]string{"Content-Type": "application/json"}

// TestLoginSessionCSRF: a JSON login sets an HttpOnly, SameSite=Strict
// cookie; with it GETs are the user's, but a POST needs the CSRF token
// too; logout ends the session.
func TestLoginSessionCSRF(t *testing.T) {
	_, ts := newTestServer(t)
	c := client(t)
	res, body := do(t, c, "POST", ts.URL+"/webinbox/login", `{"username":"Alice@localhost","password":"secret"}`, jsonType)
	if res.StatusCode != 200 || !strings.Contains(body, `"username":"alice@localhost"`) {
		t.Fatalf("login = %d %s", res.StatusCode, body)
	}
	cookie := res.Header.Get("Set-Cookie")
	for _, want := range []string{CookieName + "=", "HttpOnly", "SameSite=Strict", "Path=/"} {
		if !strings.Contains(cookie, want) {
			t.Errorf("Set-Cookie %q lacks %s", cookie, want)
		}
	}
	_, who := do(t, c, "GET", ts.URL+"/webinbox/whoami", "", nil)
	csrf := who[strings.Index(who, `"csrf":"`)+8:]
	csrf = csrf[:strings.IndexByte(csrf, '"')]
	if res, body := do(t, c, "GET", ts.URL+"/api", "", nil); res.StatusCode != 200 || body != "alice@localhost" {
		t.Errorf("GET with the cookie = %d %q", res.StatusCode, body)
	}
	if res, _ := do(t, c, "POST", ts.URL+"/api", "{}", nil); res.StatusCode != 401 {
		t.Errorf("POST with the cookie and no CSRF token = %d, want 401", res.StatusCode)
	}
	if res, _ := do(t, c, "POST", ts.URL+"/api", "{}", map[string]string{CSRFHeader: "forged"}); res.StatusCode != 401 {
		t.Errorf("POST with a wrong CSRF token = %d, want 401", res.StatusCode)
	}
	if res, body := do(t, c, "POST", ts.URL+"/api", "{}", map[string]string{CSRFHeader: csrf}); res.StatusCode != 200 || body != "alice@localhost" {
		t.Errorf("POST with the CSRF token = %d %q", res.StatusCode, body)
	}
	if res, _ := do(t, c, "POST", ts.URL+"/webinbox/logout", "", map[string]string{CSRFHeader: csrf}); res.StatusCode != 204 {
		t.Errorf("logout = %d", res.StatusCode)
	}
	if res, _ := do(t, client(t), "GET", ts.URL+"/api", "", nil); res.StatusCode != 401 {
		t.Errorf("GET without a cookie = %d, want 401", res.StatusCode)
	}
	if res, _ := do(t, c, "GET", ts.URL+"/webinbox/whoami", "", nil); res.StatusCode != 401 {
		t.Errorf("whoami after logout = %d, want 401", res.StatusCode)
	}
}

// TestLoginRefusals: a form post (not JSON) is refused, a wrong password
// is 401, and past the limiter's failures even the right one is 429.
func TestLoginRefusals(t *testing.T) {
	_, ts := newTestServer(t)
	c := client(t)
	if res, _ := do(t, c, "POST", ts.URL+"/webinbox/login", "username=alice%40localhost&password=secret",
		map[string]string{"Content-Type": "application/x-www-form-urlencoded"}); res.StatusCode != http.StatusUnsupportedMediaType {
		t.Errorf("form login = %d, want 415", res.StatusCode)
	}
	for range 3 {
		if res, _ := do(t, c, "POST", ts.URL+"/webinbox/login", `{"username":"alice@localhost","password":"wrong"}`, jsonType); res.StatusCode != 401 {
			t.Errorf("wrong password = %d, want 401", res.StatusCode)
		}
	}
	if res, _ := do(t, c, "POST", ts.URL+"/webinbox/login", `{"username":"alice@localhost","password":"secret"}`, jsonType); res.StatusCode != 429 {
		t.Errorf("login past the failure limit = %d, want 429", res.StatusCode)
	}
}

// TestPageHeaders: the page and its files are served with a policy that
// allows only their own script and style and forbids framing.
func TestPageHeaders(t *testing.T) {
	_, ts := newTestServer(t)
	for _, path := range []string{"/", "/webinbox/app.js", "/webinbox/style.css"} {
		res, body := do(t, client(t), "GET", ts.URL+path, "", nil)
		if res.StatusCode != 200 || len(body) == 0 {
			t.Errorf("GET %s = %d, %d bytes", path, res.StatusCode, len(body))
		}
		csp := res.Header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "unsafe-inline") {
			t.Errorf("GET %s: CSP %q", path, csp)
		}
	}
	if res, _ := do(t, client(t), "GET", ts.URL+"/webinbox/index.html", "", nil); res.StatusCode != 404 {
		t.Errorf("GET /webinbox/index.html = %d, want 404", res.StatusCode)
	}
	if res, _ := do(t, client(t), "GET", ts.URL+"/webinbox/..%2fwebinbox.go", "", nil); res.StatusCode != 404 {
		t.Errorf("path escape = %d, want 404", res.StatusCode)
	}
}
