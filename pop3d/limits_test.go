package pop3d

import (
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"pushmail/internal/authlimit"
)

// MaxConnsPerIP refuses the connection over it with -ERR [SYS/TEMP]; a
// closed connection frees its slot.
func TestConnectionsPerIP(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	e := newTestEnv(t, envOptions{server: Options{MaxConnsPerIP: 2, Metrics: m}})
	e.dial(t)
	second := e.dial(t)
	third := e.rawDial(t)
	third.expect(`^-ERR \[SYS/TEMP\] Too many connections from your address$`)
	third.expectClosed()
	second.cmd("QUIT", `^\+OK`)
	second.expectClosed()
	// The slot is free before the client sees the close.
	e.dial(t)
	if got := testutil.ToFloat64(m.connRefusals.WithLabelValues(refusedPerIP)); got < 1 {
		t.Errorf("per_ip refusals = %v, want at least 1", got)
	}
}

// A full server evicts the oldest connection not logged in for a
// newcomer; when every connection has logged in, the newcomer is refused.
func TestEviction(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, envOptions{server: Options{MaxConns: 2, MaxConnsPerIP: -1}})
	old := e.dial(t)
	in := e.login(t)
	e.dial(t) // evicts old
	old.expect(`^-ERR \[SYS/TEMP\] Server full, connection closed$`)
	old.expectClosed()
	in.cmd("STAT", `^\+OK`)
	// Now both slots are taken by one logged-in session and the newcomer,
	// which a further newcomer evicts; log in the survivor and the next
	// one is refused.
	c := e.dial(t)
	c.cmd("USER "+testUser, `^\+OK`)
	c.cmd("PASS "+testPassword, `^\+OK`)
	refused := e.rawDial(t)
	refused.expect(`^-ERR \[SYS/TEMP\] Too many connections, try again later$`)
}

// A client must log in within LoginTimeout, however busy it keeps the
// connection.
func TestLoginTimeout(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, envOptions{server: Options{LoginTimeout: 200 * time.Millisecond}})
	c := e.dial(t)
	c.send("CAPA")
	c.expect(`^\+OK`)
	c.multi()
	c.expect(`^-ERR Login timeout$`)
	c.expectClosed()
}

// Before login, a silent client is cut off after CommandTimeout; after
// login it gets IdleTimeout.
func TestCommandTimeout(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, envOptions{server: Options{CommandTimeout: 100 * time.Millisecond, IdleTimeout: time.Hour}})
	c := e.dial(t)
	c.expect(`^-ERR Disconnected for inactivity$`)
	c.expectClosed()
	// A command line sent in pieces must be whole within CommandTimeout.
	c = e.dial(t)
	if _, err := c.conn.Write([]byte("CA")); err != nil {
		t.Fatal(err)
	}
	c.expect(`^-ERR Disconnected for inactivity$`)
}

// Failed logins are throttled through the shared limiter: past the
// limit the right password is refused too, with -ERR [SYS/TEMP], before
// it is checked.
func TestFailedLoginThrottling(t *testing.T) {
	t.Parallel()
	lim := authlimit.New(authlimit.Config{PerIP: 2, Delay: time.Millisecond / 8})
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	e := newTestEnv(t, envOptions{server: Options{AuthLimiter: lim, Metrics: m}})
	c := e.dial(t)
	for range 2 {
		c.cmd("USER "+testUser, `^\+OK`)
		c.cmd("PASS wrong", `^-ERR \[AUTH\] Authentication failed$`)
	}
	c.cmd("USER "+testUser, `^\+OK`)
	c.cmd("PASS "+testPassword, `^-ERR \[SYS/TEMP\] Too many failed logins, try again later$`)
	c.cmd("AUTH PLAIN AGFsaWNlQGxvY2FsaG9zdABzZWNyZXQ=", `^-ERR \[SYS/TEMP\] Too many failed logins`)
	if got := testutil.ToFloat64(m.loginFailures); got != 2 {
		t.Errorf("login failures metric = %v, want 2", got)
	}
}

// Metrics count sessions, retrievals and removals.
func TestMetrics(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	e := newTestEnv(t, envOptions{server: Options{Metrics: m}})
	e.deliver(t, testMessage(1))
	e.deliver(t, testMessage(2))
	c := e.login(t)
	c.cmd("RETR 1", `^\+OK (\d+) octets$`)
	c.multi()
	c.cmd("DELE 1", `^\+OK`)
	c.cmd("DELE 2", `^\+OK`)
	c.cmd("QUIT", `^\+OK`)
	c.expectClosed()
	e.holds(t) // both removed
	e.shutdown(t)
	for name, want := range map[string]float64{
		"sessions_total": 1, "sessions": 0, "retrieved": 1, "removed": 2,
	} {
		var got float64
		switch name {
		case "sessions_total":
			got = testutil.ToFloat64(m.sessionsTotal)
		case "sessions":
			got = testutil.ToFloat64(m.sessions)
		case "retrieved":
			got = testutil.ToFloat64(m.retrieved)
		case "removed":
			got = testutil.ToFloat64(m.removed)
		}
		if got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if got := testutil.ToFloat64(m.retrievedBytes); got <= 0 {
		t.Errorf("retrieved bytes = %v", got)
	}
}

// rawDial connects without reading the greeting.
func (e *testEnv) rawDial(t testing.TB) *client {
	t.Helper()
	conn, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatalf("Dial(%s) = %v", e.addr, err)
	}
	return newClient(t, conn)
}
