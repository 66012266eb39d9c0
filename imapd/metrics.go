package imapd

import (
	"crypto/tls"
	"net"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are imapd's Prometheus collectors. A nil *Metrics records
// nothing, so Options.Metrics is optional.
type Metrics struct {
	sessions      prometheus.Gauge
	sessionsTotal prometheus.Counter
	idle          prometheus.Gauge
	push          *prometheus.HistogramVec
}

// NewMetrics creates imapd's collectors and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		sessions: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pushmail_imap_sessions",
			Help: "IMAP sessions (connections) open now.",
		}),
		sessionsTotal: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pushmail_imap_sessions_total",
			Help: "IMAP sessions opened since start.",
		}),
		idle: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pushmail_imap_idle_sessions",
			Help: "IMAP sessions in IDLE now.",
		}),
		push: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "pushmail_imap_push_seconds",
			Help: "From the store commit to the unsolicited response written to the session, by kind: exists (new mail) or flags (FETCH FLAGS). EXPUNGEs, which may wait for a command that allows them, are not timed.",
			// 10 µs .. ~5 s
			Buckets: prometheus.ExponentialBuckets(10e-6, 2.5, 15),
		}, []string{"kind"}),
	}
	reg.MustRegister(m.sessions, m.sessionsTotal, m.idle, m.push)
	return m
}

func (m *Metrics) sessionOpened() {
	if m != nil {
		m.sessions.Inc()
		m.sessionsTotal.Inc()
	}
}

func (m *Metrics) sessionClosed() {
	if m != nil {
		m.sessions.Dec()
	}
}

func (m *Metrics) idleStarted() {
	if m != nil {
		m.idle.Inc()
	}
}

func (m *Metrics) idleEnded() {
	if m != nil {
		m.idle.Dec()
	}
}

// pushed records that a change committed at committed has been written
// to a client as an unsolicited response of the given kind.
func (m *Metrics) pushed(kind string, committed time.Time) {
	if m != nil && !committed.IsZero() {
		m.push.WithLabelValues(kind).Observe(time.Since(committed).Seconds())
	}
}

// countingListener wraps accepted connections in countingConn, for the
// per-session log line's byte and line counts.
type countingListener struct{ net.Listener }

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if _, ok := c.(*tls.Conn); ok {
		// imapserver tells TLS by the *tls.Conn type: never hide one.
		// (ServeTLS counts below the TLS layer instead.)
		return c, nil
	}
	return &countingConn{Conn: c}, nil
}

// countingConn counts bytes in each direction and lines from the client
// (commands and literal lines: imapserver offers no per-command hook).
type countingConn struct {
	net.Conn
	in, out, lines atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.in.Add(int64(n))
	var lines int64
	for _, b := range p[:n] {
		if b == '\n' {
			lines++
		}
	}
	c.lines.Add(lines)
	return n, err
}

func (c *countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.out.Add(int64(n))
	return n, err
}
