package wakeup

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the wake-up engine's Prometheus collectors, per endpoint. A
// nil *Metrics records nothing.
type Metrics struct {
	deliveries *prometheus.CounterVec
	pending    *prometheus.GaugeVec
	lost       prometheus.Counter
}

// deliveryResults are the values of the result label, each started at 0
// for every endpoint (Prometheus convention: a dashboard sees the series
// before the first delivery).
var deliveryResults = []string{"ok", "retry", "refused", "given_up", "dropped_full"}

// NewMetrics creates the collectors and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pushmail_wakeup_attempts_total",
			Help: "Wake-up POSTs by endpoint and result: ok, retry (failed, will be retried), refused (4xx: dropped), given_up (failed its last attempt), dropped_full (not queued: the endpoint's queue was full).",
		}, []string{"endpoint", "result"}),
		pending: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pushmail_wakeup_pending",
			Help: "Wake-ups queued for an endpoint, not yet delivered.",
		}, []string{"endpoint"}),
		lost: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pushmail_wakeup_fell_behind_total",
			Help: "Times the wake-up engine fell behind the commits and resent every watched user's state; device-token wake-ups of those commits are lost.",
		}),
	}
	reg.MustRegister(m.deliveries, m.pending, m.lost)
	return m
}

func (m *Metrics) endpoint(name string) {
	if m == nil {
		return
	}
	for _, r := range deliveryResults {
		m.deliveries.WithLabelValues(name, r)
	}
	m.pending.WithLabelValues(name).Set(0)
}

func (m *Metrics) delivered(name, result string) {
	if m != nil {
		m.deliveries.WithLabelValues(name, result).Inc()
	}
}

func (m *Metrics) queued(name string, n int) {
	if m != nil {
		m.pending.WithLabelValues(name).Set(float64(n))
	}
}

func (m *Metrics) lostEvents() {
	if m != nil {
		m.lost.Inc()
	}
}
