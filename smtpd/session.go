package smtpd

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/emersion/go-smtp"

	"pushmail/mailstore"
)

var (
	_ smtp.Session     = (*session)(nil)
	_ smtp.LMTPSession = (*session)(nil)
)

// session is one go-smtp session: from EHLO (or LHLO) until the
// connection closes; STARTTLS restarts it in place (startedTLS). go-smtp calls its
// methods from the connection's goroutine, except Data and LMTPData during
// BDAT, which run in a goroutine of their own while the connection may
// Reset or Logout; mu orders them.
type session struct {
	srv    *Server
	role   role
	c      *smtp.Conn
	tc     *conn
	cid    string
	remote net.Addr
	tls    *tls.ConnectionState // nil without TLS
	log    *slog.Logger

	// For the Received field: the client's address literal ("" if
	// unknown) and the TLS version and cipher ("" without TLS).
	remoteInfo, tlsInfo string

	// ctx is derived from the server's base context and cancelled by
	// Logout; store calls use it.
	ctx    context.Context
	cancel context.CancelFunc

	mu   sync.Mutex
	user *mailstore.User // submission, after AUTH
	txn  *transaction    // from MAIL to the end of DATA, or RSET
}

// transaction is one MAIL ... DATA exchange.
type transaction struct {
	id    string // cid.N: in the Received field, the log and 451 replies
	start time.Time
	helo  string
	from  string
	utf8  bool  // MAIL FROM ... SMTPUTF8 (RFC 6531)
	size  int64 // MAIL FROM ... SIZE= (RFC 1870), a hint
	done  bool  // DATA was answered

	rcpts   []accepted            // accepted RCPTs in order, duplicates too
	targets []mailstore.Recipient // one per distinct mailbox
}

// accepted is one accepted RCPT TO: the address as the client gave it and
// the index of the target mailbox it reached.
type accepted struct {
	addr   string
	target int
}

// newSession is go-smtp's Backend.NewSession, called at the first
// EHLO/LHLO. The session lasts until the connection closes; STARTTLS
// restarts it in place (startedTLS).
func (s *Server) newSession(r role, c *smtp.Conn) smtp.Session {
	tc, ok := c.Conn().(*conn)
	if !ok {
		// Every connection comes from a listener that serve wrapped.
		panic(fmt.Sprintf("smtpd: connection %T not accepted by smtpd", c.Conn()))
	}
	ss := &session{
		srv:    s,
		role:   r,
		c:      c,
		tc:     tc,
		cid:    tc.cid,
		remote: tc.RemoteAddr(),
	}
	ss.tls = tc.tlsState()
	tc.onTLS = ss.startedTLS
	ss.remoteInfo = tcpInfo(ss.remote)
	ss.tlsInfo = tlsInfo(ss.tls)
	ss.ctx, ss.cancel = context.WithCancel(s.ctx)
	ss.log = s.log.With("cid", ss.cid, "proto", r.String(), "remote", ss.remote.String())
	ss.log.Debug("session started", "helo", c.Hostname(), "tls", ss.tls != nil)
	if r == roleSubmission {
		return &submissionSession{ss}
	}
	return ss
}

// startedTLS is told by the connection that STARTTLS has completed. RFC
// 3207 §4.2: the server "MUST discard any knowledge obtained from the
// client, such as the argument to the EHLO command, which was not
// obtained from the TLS negotiation itself": the transaction ends (there
// is no AUTH to forget: conn refuses STARTTLS after AUTH). The connection
// refuses the next MAIL, RCPT, DATA and AUTH until the client has sent
// EHLO again (conn.awaitingHelo).
func (ss *session) startedTLS(st *tls.ConnectionState) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.endLocked()
	ss.tls = st
	ss.tlsInfo = tlsInfo(st)
	ss.log.Debug("session restarted under TLS", "tls", ss.tlsInfo)
}

// Mail starts a transaction (RFC 5321 §4.1.1.2).
func (ss *session) Mail(from string, opts *smtp.MailOptions) error {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.tc.awaitingHelo() {
		return replyHeloAfterTLS
	}
	if ss.txn != nil {
		return replyNestedMail
	}
	if ss.role == roleSubmission && ss.user == nil {
		return replyAuthRequired
	}
	if opts == nil {
		opts = &smtp.MailOptions{}
	}
	if opts.RequireTLS && ss.tls == nil {
		return replyRequireTLSNeedsTLS
	}
	if !validPath(from) {
		return replyBadSender
	}
	if !opts.UTF8 && !isASCII(from) {
		return replyNeedSMTPUTF8
	}
	if ss.role == roleSubmission && from != "" {
		// Submission senders: the user's own address, an alias of theirs,
		// or either with a +tag; the null sender is allowed for
		// notifications (RFC 5321 §4.5.5). RFC 6409 §6.1 lets a MSA check.
		r, err := ss.srv.store.Resolve(ss.ctx, from)
		if err != nil {
			return ss.replyFor(stageMail, err, ss.cid)
		}
		if r.User != ss.user.ID {
			return replySenderNotOwned
		}
	}
	// A store below its free-space reserve (or at its size cap) refuses
	// every delivery at the end of DATA; say so now, before the client
	// sends the message (RFC 1870 §6.1, RFC 5321 §4.3.2: 452 is a reply
	// to MAIL). SpaceCheck measures room for a message of the largest
	// size, so mail is refused here from that much above the reserve,
	// while /healthz says degraded.
	if err := ss.srv.store.SpaceCheck(ss.ctx); err != nil {
		return ss.replyFor(stageMail, err, ss.cid)
	}
	if ss.srv.budgetSpent() {
		// Refused before the client sends anything more; the declared
		// SIZE= plays no part (RFC 1870 §6.2: only an estimate).
		ss.srv.opts.Metrics.budgetRefused(ss.role, refusedAtMail)
		return replyNoResources
	}
	n, ok := ss.tc.begin()
	if !ok {
		return replyShuttingDown
	}
	ss.txn = &transaction{
		id:    ss.cid + "." + strconv.Itoa(n),
		start: time.Now(),
		helo:  ss.c.Hostname(),
		from:  from,
		utf8:  opts.UTF8,
		size:  opts.Size,
	}
	return nil
}

// Rcpt accepts a recipient if it is a local mailbox (RFC 5321 §4.1.1.3).
// go-smtp has already stripped a source route (RFC 5321 §C: it is
// ignored) and refused recipients over MaxRecipients.
func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.tc.awaitingHelo() {
		return replyHeloAfterTLS
	}
	t := ss.txn
	if t == nil {
		// go-smtp asks for MAIL first; reached only after STARTTLS ended
		// the transaction go-smtp still holds.
		return replyNeedMail
	}
	if !t.utf8 && !isASCII(to) {
		return replyNeedSMTPUTF8
	}
	if strings.HasSuffix(to, ".") {
		// RFC 5321 §4.1.2: a Domain has no trailing dot. mailstore would
		// drop it and deliver locally; refuse the malformed path instead.
		return replyBadRcpt
	}
	r, err := ss.srv.store.Resolve(ss.ctx, to)
	if err == nil {
		// RFC 9208 quota: refused here, per recipient, when the user
		// has no room for a message of the announced SIZE (or any, at
		// their message limit or past their storage limit), so that
		// the other recipients still get the mail. Deliver checks
		// again with the real size. Resolve read the quota with the
		// address: no second query per recipient.
		// A message is at least one byte: a user exactly at the
		// storage limit is refused here, not in Deliver, which would
		// fail the whole transaction for every recipient.
		err = r.Quota.Admits(max(t.size, 1))
	}
	if err != nil {
		rep := ss.replyFor(stageRcpt, err, t.id)
		ss.log.Debug("recipient refused", "id", t.id, "rcpt", to, "reply", rep.Code, "err", err)
		ss.srv.opts.Metrics.rcptRefused(ss.role, rep)
		return rep
	}
	t.add(to, r)
	return nil
}

// add records an accepted recipient. A second address for a mailbox that
// already gets a copy adds no copy.
func (t *transaction) add(addr string, r mailstore.Recipient) {
	for i, tg := range t.targets {
		if tg.Mailbox == r.Mailbox {
			t.rcpts = append(t.rcpts, accepted{addr, i})
			return
		}
	}
	r.Header = recipientTrace(t.from, addr)
	t.targets = append(t.targets, r)
	t.rcpts = append(t.rcpts, accepted{addr, len(t.targets) - 1})
}

// Data reads the message and delivers it to every accepted recipient in
// one store transaction. It returns replyDelivered, which go-smtp sends
// as the 250, only after the commit.
func (ss *session) Data(r io.Reader) error {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	t := ss.txn
	if t == nil {
		// go-smtp checks MAIL and RCPT first; reached only after STARTTLS
		// ended the transaction go-smtp still holds.
		return replyNeedMail
	}
	ss.tc.beginData()
	t.done = true
	msg, held, size, err := ss.readMessage(r, t)
	if err == nil {
		_, err = ss.srv.store.Deliver(ss.ctx, msg, t.targets)
		ss.srv.release(held)
	}
	rep := ss.replyFor(stageData, err, t.id)
	ss.logTransaction(t, size, resultOf(rep))
	ss.srv.opts.Metrics.message(ss.role, rep, size)
	if rep != nil {
		return rep
	}
	return replyDelivered(t.id)
}

// LMTPData is Data for LMTP: one reply per accepted recipient (RFC 2033
// §4.2). All recipients are delivered in one store transaction, so they
// share one outcome, except recipients whose user went away since RCPT
// or who are over quota: those are found, answered on their own, and the
// rest delivered again.
func (ss *session) LMTPData(r io.Reader, status smtp.StatusCollector) error {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	t := ss.txn
	if t == nil {
		// go-smtp checks MAIL and RCPT first; reached only after STARTTLS
		// ended the transaction go-smtp still holds.
		return replyNeedMail
	}
	ss.tc.beginData()
	t.done = true
	msg, held, size, err := ss.readMessage(r, t)
	if err != nil {
		rep := ss.replyFor(stageData, err, t.id)
		ss.logTransaction(t, size, resultOf(rep))
		for range t.rcpts {
			ss.srv.opts.Metrics.message(ss.role, rep, size)
		}
		return rep // go-smtp gives it to every recipient
	}
	replies := make([]*smtp.SMTPError, len(t.targets))
	_, err = ss.srv.store.Deliver(ss.ctx, msg, t.targets)
	if errors.Is(err, mailstore.ErrNoSuchMailbox) || errors.Is(err, mailstore.ErrOverQuota) {
		var keep []mailstore.Recipient
		var kept []int
		for i, tg := range t.targets {
			r, rerr := ss.srv.store.Resolve(ss.ctx, t.firstAddr(i))
			if rerr == nil {
				// Over quota: this recipient alone gets 452 4.2.2.
				rerr = r.Quota.Admits(int64(len(tg.Header) + len(msg)))
			}
			if rerr != nil {
				replies[i] = ss.replyFor(stageRcpt, rerr, t.id)
				continue
			}
			r.Header = tg.Header
			keep = append(keep, r)
			kept = append(kept, i)
		}
		if len(keep) > 0 && len(keep) < len(t.targets) {
			_, err = ss.srv.store.Deliver(ss.ctx, msg, keep)
		}
		rep := ss.replyFor(stageData, err, t.id)
		for _, i := range kept {
			replies[i] = rep
		}
	} else {
		rep := ss.replyFor(stageData, err, t.id)
		for i := range replies {
			replies[i] = rep
		}
	}
	ss.srv.release(held)
	results := make([]string, len(t.rcpts))
	for i, a := range t.rcpts {
		rep := replies[a.target]
		results[i] = resultOf(rep)
		ss.srv.opts.Metrics.message(ss.role, rep, size)
		if rep != nil {
			status.SetStatus(a.addr, rep)
		} else {
			status.SetStatus(a.addr, replyDelivered(t.id))
		}
	}
	ss.logTransaction(t, size, strings.Join(results, ", "))
	return nil
}

// firstAddr is the first address given for target i.
func (t *transaction) firstAddr(i int) string {
	for _, a := range t.rcpts {
		if a.target == i {
			return a.addr
		}
	}
	return t.targets[i].Address
}

// readMessage reads DATA or the BDAT chunks and returns the message to
// store: the Received field followed by the message as sent, nothing
// normalised, in a slice of its exact size. size is the length of the
// message as sent, also on error. held is the budget taken for the
// delivery of msg, which the caller releases once Deliver has returned.
//
// The message is received as incoming describes (in memory up to
// Options.SpoolThreshold, then on disk), and read back whole only here,
// once it is complete: mailstore.Deliver takes the message as one slice,
// since it parses it and writes it into SQLite in one transaction. The
// memory a delivery needs, about the message once per distinct recipient
// plus once more (Deliver prepends each copy's trace fields), is taken
// from the budget first, and refused with 451 4.3.1 if it is not free;
// capped at the whole budget, so that one message larger than that
// still goes through alone.
func (ss *session) readMessage(r io.Reader, t *transaction) (msg []byte, held int64, size int, err error) {
	in, ok := ss.srv.newIncoming()
	if !ok {
		// go-smtp reads the rest of the message and discards it, in its
		// own small buffer: RFC 5321 §3.8 lets a server close only as it
		// shuts down.
		ss.srv.opts.Metrics.budgetRefused(ss.role, refusedAtData)
		return nil, 0, 0, replyNoResources
	}
	defer in.close()
	err = in.readFrom(r, ss.srv.opts.MaxMessageBytes)
	size = int(in.n)
	if errors.Is(err, errTooBig) {
		// RFC 1870 §6.3: once the message passes the limit, the server
		// may answer 552 and close the connection instead of reading a
		// message it will not take, however long, to its end.
		ss.tc.closeAfterReply()
		return nil, 0, size, replyTooBig
	}
	if err != nil {
		return nil, 0, size, err
	}
	var field [512]byte // most Received fields fit; append grows it if not
	rcvd := ss.appendReceived(field[:0], t, time.Now())
	total := int64(len(rcvd) + size)
	need := min(total*int64(len(t.targets)+1), ss.srv.budget.Limit())
	if !ss.srv.acquire(need) {
		ss.srv.opts.Metrics.budgetRefused(ss.role, refusedAtDeliver)
		return nil, 0, size, replyNoResources
	}
	msg, err = in.message(rcvd)
	if err != nil {
		ss.srv.release(need)
		return nil, 0, size, err
	}
	return msg, need, size, nil
}

// Reset ends the transaction (RSET, a new EHLO, or after DATA's reply).
func (ss *session) Reset() {
	ss.mu.Lock()
	ss.endLocked()
	ss.mu.Unlock()
}

// Logout ends the session: the connection closed, or STARTTLS.
func (ss *session) Logout() error {
	ss.mu.Lock()
	ss.endLocked()
	ss.mu.Unlock()
	ss.cancel()
	return nil
}

func (ss *session) endLocked() {
	if t := ss.txn; t != nil && !t.done {
		ss.log.Debug("transaction abandoned", "id", t.id, "from", t.from, "rcpts", len(t.rcpts))
	}
	ss.txn = nil
	ss.tc.end()
}

// logTransaction writes the one log line of a transaction; result is the
// reply, or for LMTP the replies in recipient order.
func (ss *session) logTransaction(t *transaction, size int, result string) {
	ctx := context.Background()
	if !ss.log.Enabled(ctx, slog.LevelInfo) {
		return
	}
	ss.log.LogAttrs(ctx, slog.LevelInfo, "transaction", slog.String("id", t.id), slog.String("from", t.from),
		slog.Any("rcpts", rcptList(t.rcpts)), slog.Int("size", size), slog.String("result", result),
		slog.Duration("duration", time.Since(t.start)))
}

// rcptList logs the addresses of a transaction's recipients as a
// []string of them would be logged, "[a@x b@y]" by slog's TextHandler
// and ["a@x","b@y"] by its JSONHandler, without the []string and
// without fmt, which the TextHandler would use for one.
type rcptList []accepted

// MarshalText writes the list as fmt writes a []string.
func (l rcptList) MarshalText() ([]byte, error) {
	n := 2
	for _, a := range l {
		n += len(a.addr) + 1
	}
	b := make([]byte, 0, n)
	b = append(b, '[')
	for i, a := range l {
		if i > 0 {
			b = append(b, ' ')
		}
		b = append(b, a.addr...)
	}
	return append(b, ']'), nil
}

// MarshalJSON writes the list as slog's JSONHandler writes a []string.
func (l rcptList) MarshalJSON() ([]byte, error) {
	addrs := make([]string, len(l))
	for i, a := range l {
		addrs[i] = a.addr
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // as the JSONHandler's own encoder
	if err := enc.Encode(addrs); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// resultOf is a reply's code for the log: "250" when rep is nil.
func resultOf(rep *smtp.SMTPError) string {
	if rep == nil {
		return "250"
	}
	e := rep.EnhancedCode
	return fmt.Sprintf("%d %d.%d.%d", rep.Code, e[0], e[1], e[2])
}

// validPath reports whether a MAIL FROM path may be copied into a header
// field: valid UTF-8, no control characters, at most 256 octets (RFC 5321
// §4.5.3.1.3).
func validPath(p string) bool {
	if len(p) > 256 || !utf8.ValidString(p) {
		return false
	}
	for i := 0; i < len(p); i++ {
		if p[i] < ' ' || p[i] == 0x7f {
			return false
		}
	}
	return true
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}
