package pop3d

import "github.com/prometheus/client_golang/prometheus"

// Metrics are pop3d's Prometheus collectors. A nil *Metrics records
// nothing, so Options.Metrics is optional.
type Metrics struct {
	sessions       prometheus.Gauge
	sessionsTotal  prometheus.Counter
	loginFailures  prometheus.Counter
	retrieved      prometheus.Counter
	retrievedBytes prometheus.Counter
	removed        prometheus.Counter
	connRefusals   *prometheus.CounterVec
	evictions      prometheus.Counter
}

// NewMetrics creates pop3d's collectors and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		sessions: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pushmail_pop3_sessions",
			Help: "POP3 sessions (connections) open now.",
		}),
		sessionsTotal: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pushmail_pop3_sessions_total",
			Help: "POP3 sessions opened since start.",
		}),
		loginFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pushmail_pop3_login_failures_total",
			Help: "POP3 logins (PASS, AUTH) refused for wrong credentials.",
		}),
		retrieved: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pushmail_pop3_retrieved_messages_total",
			Help: "Messages sent in answer to RETR.",
		}),
		retrievedBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pushmail_pop3_retrieved_bytes_total",
			Help: "Octets of the messages sent in answer to RETR (as LIST counts them).",
		}),
		removed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pushmail_pop3_removed_messages_total",
			Help: "Messages removed from the store by DELE and QUIT (the UPDATE state).",
		}),
		connRefusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pushmail_pop3_connections_refused_total",
			Help: "POP3 connections greeted -ERR [SYS/TEMP], by reason (per_ip: limits.max_conns_per_ip; full: limits.max_conns reached and every connection logged in).",
		}, []string{"reason"}),
		evictions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pushmail_pop3_connections_evicted_total",
			Help: "POP3 connections not logged in closed with -ERR [SYS/TEMP] to make room for a new one.",
		}),
	}
	reg.MustRegister(m.sessions, m.sessionsTotal, m.loginFailures, m.retrieved, m.retrievedBytes, m.removed, m.connRefusals, m.evictions)
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

func (m *Metrics) loginFailed() {
	if m != nil {
		m.loginFailures.Inc()
	}
}

func (m *Metrics) messageRetrieved(size int64) {
	if m != nil {
		m.retrieved.Inc()
		m.retrievedBytes.Add(float64(size))
	}
}

func (m *Metrics) messagesRemoved(n int) {
	if m != nil {
		m.removed.Add(float64(n))
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
