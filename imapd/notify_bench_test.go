package imapd

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// BenchmarkNotifyLatency compares the ways a client hears of a delivery
// to INBOX: "* N EXISTS" in IDLE with INBOX selected (idle-exists,
// BenchmarkPushLatency's path), and "* STATUS INBOX (…)" with another
// mailbox selected and NOTIFY set for the inboxes, in IDLE
// (notify-idle) and sending nothing at all (notify-noidle: the NOTIFY
// goroutine's push). Each is measured from Deliver returning (durable
// and published) to its line being read by a raw client; deliver-p50
// adds the delivery. Every delivery reaches all three clients, read in
// an order that rotates from round to round, so that neither the load of
// the shared machine nor the wait for another client's read favours one.
func BenchmarkNotifyLatency(b *testing.B) {
	env := newTestEnv(b, envOptions{})
	idler := env.raw(b)
	idler.ok("ENABLE IMAP4rev2") // no \Recent: one line per delivery
	idler.ok("SELECT INBOX")
	idleTag := idler.idle()
	notifier := env.raw(b)
	notifier.ok("SELECT Archive")
	notifier.ok("NOTIFY SET (inboxes (MessageNew MessageExpunge))")
	notifyTag := notifier.idle()
	quiet := env.raw(b)
	quiet.ok("SELECT Archive")
	quiet.ok("NOTIFY SET (inboxes (MessageNew MessageExpunge))")
	b.Cleanup(func() {
		idler.done(idleTag)
		notifier.done(notifyTag)
	})
	type client struct {
		name string
		c    *rawConn
		want func(n int) string // the line's prefix
		lat  []time.Duration
	}
	status := func(n int) string { return fmt.Sprintf("* STATUS INBOX (MESSAGES %d ", n) }
	clients := []*client{
		{name: "idle-exists", c: idler, want: func(n int) string { return fmt.Sprintf("* %d EXISTS", n) }},
		{name: "notify-idle", c: notifier, want: status},
		{name: "notify-noidle", c: quiet, want: status},
	}
	msg := testMessage(1)
	var deliver []time.Duration
	for n := 1; b.Loop(); n++ {
		start := time.Now()
		env.deliver(b, msg)
		delivered := time.Now()
		deliver = append(deliver, delivered.Sub(start))
		for i := range clients {
			cl := clients[(n+i)%len(clients)]
			if l := cl.c.readLine(); !strings.HasPrefix(l, cl.want(n)) {
				b.Fatalf("%s read %q, want %s…", cl.name, l, cl.want(n))
			}
			cl.lat = append(cl.lat, time.Since(delivered))
		}
	}
	for _, cl := range clients {
		b.ReportMetric(percentile(cl.lat, 50).Seconds()*1e6, cl.name+"-p50-µs")
		b.ReportMetric(percentile(cl.lat, 99).Seconds()*1e6, cl.name+"-p99-µs")
	}
	b.ReportMetric(percentile(deliver, 50).Seconds()*1e6, "deliver-p50-µs")
}
