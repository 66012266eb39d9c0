package main

import (
	"crypto/subtle"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"pushmail/internal/proxylisten"
	"pushmail/notify"
)

// storeMetrics observes the mailstore writer through mailstore.Options.OnCommit.
type storeMetrics struct {
	commit *prometheus.HistogramVec
	batch  prometheus.Histogram
	bytes  prometheus.Histogram
}

func newStoreMetrics(reg prometheus.Registerer) *storeMetrics {
	m := &storeMetrics{
		commit: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "pushmail_store_commit_seconds",
			Help:    "Time of one group-commit batch, from BEGIN to durable COMMIT.",
			Buckets: prometheus.ExponentialBuckets(50e-6, 2, 16), // 50 µs .. 1.6 s
		}, nil),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "pushmail_store_batch_writes",
			Help:    "Writes (deliveries, appends, flag changes, …) committed together in one transaction.",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256},
		}),
		bytes: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "pushmail_store_batch_bytes",
			Help:    "Message bytes written by one group-commit batch.",
			Buckets: prometheus.ExponentialBuckets(1024, 4, 10), // 1 KiB .. 256 MiB
		}),
	}
	reg.MustRegister(m.commit, m.batch, m.bytes)
	return m
}

// observe is the mailstore OnCommit hook: cheap, it runs on the writer.
func (m *storeMetrics) observe(writes, bytes int, d time.Duration) {
	m.commit.WithLabelValues().Observe(d.Seconds())
	m.batch.Observe(float64(writes))
	m.bytes.Observe(float64(bytes))
}

// proxyMetrics counts the connections that marked listeners refused
// (listen.proxy_protocol).
type proxyMetrics struct{ refused *prometheus.CounterVec }

func newProxyMetrics(reg prometheus.Registerer) proxyMetrics {
	m := proxyMetrics{prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pushmail_proxy_refused_total",
		Help: "Connections refused by a PROXY protocol listener, by listener and reason: untrusted (peer not in listen.proxy_trusted), no_header, bad_header.",
	}, []string{"listener", "reason"})}
	reg.MustRegister(m.refused)
	return m
}

// rejected returns the proxylisten.Options.Rejected hook of a listener;
// it also makes the listener's counters exist at 0.
func (m proxyMetrics) rejected(listener string) func(reason string) {
	for _, r := range []string{proxylisten.ReasonUntrusted, proxylisten.ReasonNoHeader, proxylisten.ReasonBadHeader} {
		m.refused.WithLabelValues(listener, r)
	}
	return func(reason string) { m.refused.WithLabelValues(listener, reason).Inc() }
}

// registerHubMetrics exposes the notifier's counters.
func registerHubMetrics(reg prometheus.Registerer, hub *notify.Hub) {
	reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "pushmail_notify_resyncs_total",
			Help: "Times a watcher fell behind its bounded event queue and resynchronised from the store.",
		}, func() float64 { return float64(hub.Resyncs()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "pushmail_notify_subscriptions",
			Help: "Open subscriptions of clients: IMAP sessions with a mailbox selected or NOTIFY set, and one per user with JMAP event streams open.",
		}, func() float64 { return float64(hub.Subscriptions()) }),
	)
}

// newRegistry returns a registry with the Go runtime and process collectors.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// metricsHandler serves reg in the Prometheus text format, behind a bearer
// token when one is configured.
func metricsHandler(reg *prometheus.Registry, token string) http.Handler {
	h := promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	if token == "" {
		return h
	}
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="pushmail metrics"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}
