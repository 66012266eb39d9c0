package imapd

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// BenchmarkNotifyLatency compares the two ways a client in IDLE hears of
// a delivery to INBOX: "* N EXISTS" with INBOX selected (idle-exists,
// BenchmarkPushLatency's path), and "* STATUS INBOX (…)" with another
// mailbox selected and NOTIFY set for the inboxes (notify-status). Both
// are measured from Deliver returning (durable and published) to the
// line being read by a raw client; deliver-p50 adds the delivery. The
// two run alternately, round by round, so that the load of the shared
// machine falls on both alike.
func BenchmarkNotifyLatency(b *testing.B) {
	env := newTestEnv(b, envOptions{})
	idler := env.raw(b)
	idler.ok("SELECT INBOX")
	idleTag := idler.idle()
	notifier := env.raw(b)
	notifier.ok("SELECT Archive")
	notifier.ok("NOTIFY SET (inboxes (MessageNew MessageExpunge))")
	notifyTag := notifier.idle()
	b.Cleanup(func() {
		idler.done(idleTag)
		notifier.done(notifyTag)
	})
	msg := testMessage(1)
	var idlePush, notifyPush, deliver []time.Duration
	// Each delivery reaches both clients: which is read first alternates,
	// so neither waits for the other's read in its figure.
	for n := 1; b.Loop(); n++ {
		start := time.Now()
		env.deliver(b, msg)
		delivered := time.Now()
		deliver = append(deliver, delivered.Sub(start))
		readExists := func() {
			if l := idler.readLine(); l != fmt.Sprintf("* %d EXISTS", n) {
				b.Fatalf("IDLE client read %q, want * %d EXISTS", l, n)
			}
			if l := idler.readLine(); !strings.HasSuffix(l, " RECENT") {
				b.Fatalf("IDLE client read %q, want * n RECENT", l)
			}
			idlePush = append(idlePush, time.Since(delivered))
		}
		readStatus := func() {
			if l := notifier.readLine(); !strings.HasPrefix(l, fmt.Sprintf("* STATUS INBOX (MESSAGES %d ", n)) {
				b.Fatalf("NOTIFY client read %q, want * STATUS INBOX (MESSAGES %d …)", l, n)
			}
			notifyPush = append(notifyPush, time.Since(delivered))
		}
		if n%2 == 0 {
			readExists()
			readStatus()
		} else {
			readStatus()
			readExists()
		}
	}
	b.ReportMetric(percentile(idlePush, 50).Seconds()*1e6, "idle-exists-p50-µs")
	b.ReportMetric(percentile(idlePush, 99).Seconds()*1e6, "idle-exists-p99-µs")
	b.ReportMetric(percentile(notifyPush, 50).Seconds()*1e6, "notify-status-p50-µs")
	b.ReportMetric(percentile(notifyPush, 99).Seconds()*1e6, "notify-status-p99-µs")
	b.ReportMetric(percentile(deliver, 50).Seconds()*1e6, "deliver-p50-µs")
}
