package smtpd

import (
	"strconv"

	"github.com/emersion/go-smtp"
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are smtpd's Prometheus collectors. A nil *Metrics records
// nothing, so Options.Metrics is optional.
type Metrics struct {
	connections  *prometheus.CounterVec
	open         *prometheus.GaugeVec
	messages     *prometheus.CounterVec
	rcptRejected *prometheus.CounterVec
	bytes        *prometheus.CounterVec
	inflight     prometheus.Gauge
	refused      *prometheus.CounterVec
	connRefusals *prometheus.CounterVec
	evictions    *prometheus.CounterVec
}

// NewMetrics creates smtpd's collectors and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		connections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pushmail_smtp_connections_total",
			Help: "Connections accepted, by protocol (smtp, lmtp, submission).",
		}, []string{"proto"}),
		open: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pushmail_smtp_connections_open",
			Help: "Connections open now, by protocol.",
		}, []string{"proto"}),
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pushmail_smtp_messages_total",
			Help: "Messages answered at the end of DATA/BDAT, by protocol and reply (\"250\" is accepted; for LMTP one per recipient).",
		}, []string{"proto", "reply"}),
		rcptRejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pushmail_smtp_recipients_rejected_total",
			Help: "RCPT TO commands refused, by protocol and reply (e.g. \"550 5.1.1\" unknown user, \"550 5.7.1\" relay denied).",
		}, []string{"proto", "reply"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pushmail_smtp_accepted_bytes_total",
			Help: "Bytes of accepted messages as received (before trace fields), by protocol.",
		}, []string{"proto"}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pushmail_smtp_inflight_bytes",
			Help: "Bytes of messages held in memory by SMTP, LMTP and submission sessions now: receive buffers and messages being delivered (counted against limits.max_inflight_bytes).",
		}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pushmail_smtp_inflight_refusals_total",
			Help: "Transactions answered 451 4.3.1 because the in-flight message budget was spent, by protocol and stage (mail: at MAIL; data: before the first byte of DATA; deliver: when the received message was to be delivered).",
		}, []string{"proto", "stage"}),
		connRefusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pushmail_smtp_connections_refused_total",
			Help: "Connections answered 421 and closed at once, by protocol and reason (per_ip: limits.max_conns_per_ip; full: the listener full of authenticated or transferring connections).",
		}, []string{"proto", "reason"}),
		evictions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pushmail_smtp_connections_evicted_total",
			Help: "Connections closed with a 421 by a limit, by protocol and reason (room: the least active unauthenticated one, for a new connection on a full listener; idle_commands: limits.smtp_max_idle_commands commands without a transaction).",
		}, []string{"proto", "reason"}),
	}
	reg.MustRegister(m.connections, m.open, m.messages, m.rcptRejected, m.bytes, m.inflight, m.refused, m.connRefusals, m.evictions)
	m.initLabels()
	return m
}

// initLabels creates every series whose label values are known in
// advance, at 0, so that they are exported before the first event: a
// counter that appears only at its first increment hides that increment
// from rate() and leaves dashboards empty (Prometheus instrumentation
// practice, "Avoid missing metrics"). The replies are those a healthy
// server gives every day; rarer ones appear when they happen.
func (m *Metrics) initLabels() {
	for r := range role(len(roleNames)) {
		p := r.String()
		m.connections.WithLabelValues(p)
		m.open.WithLabelValues(p)
		m.bytes.WithLabelValues(p)
		for _, st := range refusalStages {
			m.refused.WithLabelValues(p, st)
		}
		for _, reason := range []string{refusedPerIP, refusedFull} {
			m.connRefusals.WithLabelValues(p, reason)
		}
		for _, reason := range []string{evictedForRoom, evictedIdleCommands} {
			m.evictions.WithLabelValues(p, reason)
		}
		for _, rep := range []*smtp.SMTPError{nil, replyTempFailure(stageData, ""), replyTooBig} {
			m.messages.WithLabelValues(p, replyLabel(rep))
		}
		rcpt := []*smtp.SMTPError{replyNoSuchUser, replyBadRcpt, replyNeedSMTPUTF8}
		if r == roleSubmission {
			rcpt = append(rcpt, replyNoOutbound) // same label as replyRelayDenied
		} else {
			rcpt = append(rcpt, replyRelayDenied)
		}
		for _, rep := range rcpt {
			m.rcptRejected.WithLabelValues(p, replyLabel(rep))
		}
	}
}

// replyLabel is a reply's label value: "250", or "550 5.1.1".
func replyLabel(rep *smtp.SMTPError) string {
	if rep == nil {
		return "250"
	}
	e := rep.EnhancedCode
	if e == (smtp.EnhancedCode{}) || e == smtp.NoEnhancedCode {
		return strconv.Itoa(rep.Code)
	}
	return strconv.Itoa(rep.Code) + " " + strconv.Itoa(e[0]) + "." + strconv.Itoa(e[1]) + "." + strconv.Itoa(e[2])
}

func (m *Metrics) connOpened(r role) {
	if m == nil {
		return
	}
	m.connections.WithLabelValues(r.String()).Inc()
	m.open.WithLabelValues(r.String()).Inc()
}

func (m *Metrics) connClosed(r role) {
	if m == nil {
		return
	}
	m.open.WithLabelValues(r.String()).Dec()
}

// message records the reply to one message (or, for LMTP, one recipient).
func (m *Metrics) message(r role, rep *smtp.SMTPError, size int) {
	if m == nil {
		return
	}
	m.messages.WithLabelValues(r.String(), replyLabel(rep)).Inc()
	if rep == nil {
		m.bytes.WithLabelValues(r.String()).Add(float64(size))
	}
}

func (m *Metrics) rcptRefused(r role, rep *smtp.SMTPError) {
	if m == nil {
		return
	}
	m.rcptRejected.WithLabelValues(r.String(), replyLabel(rep)).Inc()
}

// The stages at which the in-flight budget refuses a transaction: the
// "stage" label of pushmail_smtp_inflight_refusals_total.
const (
	refusedAtMail    = "mail"
	refusedAtData    = "data"
	refusedAtDeliver = "deliver"
)

var refusalStages = []string{refusedAtMail, refusedAtData, refusedAtDeliver}

// inflightChanged records that n bytes (negative: released) of the
// budget were taken.
func (m *Metrics) inflightChanged(n int64) {
	if m == nil {
		return
	}
	m.inflight.Add(float64(n))
}

// budgetRefused records a 451 4.3.1 for a spent budget.
func (m *Metrics) budgetRefused(r role, stage string) {
	if m == nil {
		return
	}
	m.refused.WithLabelValues(r.String(), stage).Inc()
}

// The reasons of pushmail_smtp_connections_refused_total and
// pushmail_smtp_connections_evicted_total.
const (
	refusedPerIP        = "per_ip"
	refusedFull         = "full"
	evictedForRoom      = "room"
	evictedIdleCommands = "idle_commands"
)

// connRefused records a connection refused with a 421 at accept.
func (m *Metrics) connRefused(r role, reason string) {
	if m == nil {
		return
	}
	m.connRefusals.WithLabelValues(r.String(), reason).Inc()
}

// connEvicted records a connection closed by a limit with a 421.
func (m *Metrics) connEvicted(r role, reason string) {
	if m == nil {
		return
	}
	m.evictions.WithLabelValues(r.String(), reason).Inc()
}
