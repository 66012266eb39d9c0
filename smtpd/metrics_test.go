package smtpd

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestMetricsCountConnectionsMessagesAndRejections(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	e := newEnv(t, envConfig{opts: Options{Metrics: m}})

	c := e.dial(roleMX)
	msg := testMessage("metrics", 3)
	if err := send(t, c, "x@example.net", []string{"alice@example.org"}, msg); err != nil {
		t.Fatalf("send: %v", err)
	}
	if err := c.Mail("x@example.net", nil); err != nil {
		t.Fatal(err)
	}
	wantReply(t, "RCPT unknown", c.Rcpt("nobody@example.org", nil), 550, "5.1.1")
	wantReply(t, "RCPT relay", c.Rcpt("someone@elsewhere.net", nil), 550, "5.7.1")
	c.Quit()

	for _, tc := range []struct {
		name string
		got  float64
		want float64
	}{
		{"smtp connections", testutil.ToFloat64(m.connections.WithLabelValues("smtp")), 1},
		{"accepted messages", testutil.ToFloat64(m.messages.WithLabelValues("smtp", "250")), 1},
		{"accepted bytes", testutil.ToFloat64(m.bytes.WithLabelValues("smtp")), float64(len(msg))},
		{"unknown user", testutil.ToFloat64(m.rcptRejected.WithLabelValues("smtp", "550 5.1.1")), 1},
		{"relay denied", testutil.ToFloat64(m.rcptRejected.WithLabelValues("smtp", "550 5.7.1")), 1},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %v, want %v", tc.name, tc.got, tc.want)
		}
	}
	e.shutdown()
	if open := testutil.ToFloat64(m.open.WithLabelValues("smtp")); open != 0 {
		t.Errorf("open smtp connections after shutdown = %v, want 0", open)
	}
}
