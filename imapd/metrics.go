package imapd

import (
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
	inflight      prometheus.Gauge
	appendRefusal prometheus.Counter
	connRefusals  *prometheus.CounterVec
	evictions     prometheus.Counter
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
			Help: "From the store commit to the unsolicited response written to the session, by kind: exists (new mail), flags (FETCH FLAGS), and status, list or metadata (NOTIFY, RFC 5465: other mailboxes). EXPUNGEs, which may wait for a command that allows them, are not timed.",
			// 10 µs .. ~5 s
			Buckets: prometheus.ExponentialBuckets(10e-6, 2.5, 15),
		}, []string{"kind"}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pushmail_imap_inflight_bytes",
			Help: "Bytes of APPEND messages held in memory by IMAP sessions now (counted against limits.max_inflight_bytes, with SMTP's).",
		}),
		appendRefusal: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pushmail_imap_append_limit_refusals_total",
			Help: "APPENDs answered NO [LIMIT] because the in-flight message budget was spent.",
		}),
		connRefusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pushmail_imap_connections_refused_total",
			Help: "IMAP connections greeted * BYE [LIMIT], by reason (per_ip: limits.max_conns_per_ip; full: limits.max_conns reached and every connection logged in).",
		}, []string{"reason"}),
		evictions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pushmail_imap_connections_evicted_total",
			Help: "IMAP connections not logged in closed with * BYE [UNAVAILABLE] to make room for a new one (limits.max_conns, limits.imap_max_preauth_conns).",
		}),
	}
	reg.MustRegister(m.sessions, m.sessionsTotal, m.idle, m.push, m.inflight, m.appendRefusal, m.connRefusals, m.evictions)
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

func (m *Metrics) inflightChanged(n int64) {
	if m != nil {
		m.inflight.Add(float64(n))
	}
}

func (m *Metrics) appendRefused() {
	if m != nil {
		m.appendRefusal.Inc()
	}
}

// The reasons a connection is refused.
const (
	refusedPerIP = "per_ip"
	refusedFull  = "full"
)

func (m *Metrics) connRefused(reason string) {
	if m != nil {
		m.connRefusals.WithLabelValues(reason).Inc()
	}
}

func (m *Metrics) connEvicted() {
	if m != nil {
		m.evictions.Inc()
	}
}
