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

// TestMetricsStartAtZero: the labelled counters are exported, at 0, for
// their known label values before anything happened, so that the first
// delivery is a change a dashboard and rate() can see.
func TestMetricsStartAtZero(t *testing.T) {
	reg := prometheus.NewRegistry()
	NewMetrics(reg)
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	got := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			key := f.GetName()
			for _, l := range m.GetLabel() {
				key += " " + l.GetName() + "=" + l.GetValue()
			}
			switch {
			case m.GetCounter() != nil:
				got[key] = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				got[key] = m.GetGauge().GetValue()
			}
		}
	}
	for _, want := range []string{
		"pushmail_smtp_messages_total proto=smtp reply=250",
		"pushmail_smtp_messages_total proto=lmtp reply=250",
		"pushmail_smtp_messages_total proto=submission reply=250",
		"pushmail_smtp_messages_total proto=smtp reply=451 4.3.0",
		"pushmail_smtp_messages_total proto=smtp reply=552 5.3.4",
		"pushmail_smtp_connections_total proto=smtp",
		"pushmail_smtp_connections_total proto=lmtp",
		"pushmail_smtp_connections_total proto=submission",
		"pushmail_smtp_connections_open proto=smtp",
		"pushmail_smtp_accepted_bytes_total proto=lmtp",
		"pushmail_smtp_inflight_bytes",
		"pushmail_smtp_inflight_refusals_total proto=smtp stage=mail",
		"pushmail_smtp_inflight_refusals_total proto=submission stage=deliver",
		"pushmail_smtp_recipients_rejected_total proto=smtp reply=550 5.1.1",
		"pushmail_smtp_recipients_rejected_total proto=smtp reply=550 5.7.1",
		"pushmail_smtp_recipients_rejected_total proto=lmtp reply=553 5.1.3",
		"pushmail_smtp_recipients_rejected_total proto=submission reply=550 5.7.1",
	} {
		v, ok := got[want]
		if !ok {
			t.Errorf("series %q not exported before the first event", want)
		} else if v != 0 {
			t.Errorf("series %q = %v before the first event, want 0", want, v)
		}
	}
}
