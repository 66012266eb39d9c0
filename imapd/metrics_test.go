package imapd

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestMetricsSessionsIdleAndPushLatency(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	e := newTestEnv(t, envOptions{server: Options{Metrics: m}})
	ev, opts := newEvents()
	c := e.selectInbox(t, opts)
	if got := testutil.ToFloat64(m.sessions); got != 1 {
		t.Errorf("sessions = %v, want 1", got)
	}
	idle, err := c.Idle()
	if err != nil {
		t.Fatal(err)
	}
	e.deliver(t, testMessage(1))
	wait(t, ev.exists, "EXISTS in IDLE")
	if got := testutil.ToFloat64(m.idle); got != 1 {
		t.Errorf("idle sessions = %v, want 1", got)
	}
	if err := idle.Close(); err != nil {
		t.Fatal(err)
	}
	if err := idle.Wait(); err != nil {
		t.Fatal(err)
	}
	// The push is observed just after the EXISTS is written, so the
	// client can read EXISTS first; IDLE's tagged OK comes after both.
	if n := testutil.CollectAndCount(m.push, "pushmail_imap_push_seconds"); n != 1 {
		t.Errorf("push histogram series = %d, want 1 (kind=exists)", n)
	}
	c.Close()
	// Shutdown waits until every session has ended (the env's cleanup
	// calls it again, which is a no-op).
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := e.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if s, i := testutil.ToFloat64(m.sessions), testutil.ToFloat64(m.idle); s != 0 || i != 0 {
		t.Errorf("after logout and shutdown: sessions %v, idle %v; want 0, 0", s, i)
	}
	if got := testutil.ToFloat64(m.sessionsTotal); got != 1 {
		t.Errorf("sessions_total = %v, want 1", got)
	}
}
