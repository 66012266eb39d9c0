package main

// TestIMAPMultiClientConsistency lives here, in cmd/pushmail, because it
// needs SMTP deliveries and IMAP sessions over one store: cmd/pushmail is
// the package that wires smtpd and imapd together (STYLE.md §2.1,
// deps_test.go), while imapd must not import smtpd, not even from a test.
// It starts both servers in this process over one mailstore, as
// newMailEnv does, rather than through serve or internal/bench's startInproc:
// the test then holds the *mailstore.Store and reads the final state
// directly, without a second opener racing the server for the data lock.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-smtp"
	"golang.org/x/crypto/bcrypt"

	"pushmail/internal/pgtest"
	"pushmail/mailstore"
)

const (
	ccUser     = "mc@example.org"
	ccPassword = "secret"
	ccFrom     = "sender@example.net"
	// ccSeedEnv replays a run's command mixes: client i draws its choices
	// from PCG(seed, i), so each client repeats its sequence (the
	// interleaving between clients is the scheduler's, so a replay is
	// likely, not certain, to fail the same way).
	ccSeedEnv = "PUSHMAIL_CONSISTENCY_SEED"
)

// The shape of a run: bounded in count, never in wall-clock time.
const (
	ccClients    = 5  // concurrent IMAP clients
	ccRounds     = 10 // rounds of activity, each ended by a checkpoint
	ccCommands   = 40 // commands each client issues per round
	ccSenders    = 2  // concurrent SMTP connections
	ccDeliveries = 8  // messages each sender delivers per round
	// ccTickEvery: a client lets a sender deliver every ccTickEvery
	// commands, so deliveries spread over the round.
	ccTickEvery   = ccClients * ccCommands / (ccSenders * ccDeliveries)
	ccIdleBound   = 40 * time.Millisecond
	ccRunDeadline = 3 * time.Minute // conn deadline: a hung server fails the test instead of hanging it
)

var ccMailboxes = []string{"INBOX", "Archive", "Trash"}

// ccFlags are the flags clients store: system flags, \Deleted among them,
// and keywords.
var ccFlags = []imap.Flag{imap.FlagSeen, imap.FlagDeleted, imap.FlagFlagged, imap.FlagAnswered, imap.FlagDraft, "$Label1", "Work"}

// TestIMAPMultiClientConsistency runs several IMAP clients with random
// command mixes on the same user's mailboxes while mail arrives over SMTP,
// then checks what RFC 9051 and the store promise:
//
//   - nothing lost: a message leaves a mailbox only if some client marked
//     it \Deleted (or copied a \Deleted one there) or moved it; every SMTP
//     delivery that got 250 and every APPEND that got OK was stored;
//   - every client's view (sequence numbers, UIDs, flags), built only from
//     the server's responses, matches the store once activity stops;
//   - no EXPUNGE during FETCH, STORE or SEARCH (RFC 9051 §7.5.1), nor
//     during CLOSE or SELECT;
//   - no response names a sequence number beyond what the client knows.
//
// The clients read the server's responses through a tap on the
// connection, in wire order. imapclient's UnilateralDataHandler cannot
// serve here: imapclient (v2.0.0-beta.8, fetch.go handleFetch) hands a
// unilateral FETCH to the handler in a new goroutine, so its order against
// EXPUNGE and EXISTS is lost, and it routes a FETCH whose number is in a
// pending FETCH or STORE's set to that command instead.
// TestIMAPMultiClientConsistency runs on both backends: an SQLite file,
// and a PostgreSQL database when the tests have a server (pgtest).
func TestIMAPMultiClientConsistency(t *testing.T) {
	if testing.Short() {
		t.Skip("runs several clients for a few seconds")
	}
	t.Run("sqlite", func(t *testing.T) {
		testIMAPMultiClientConsistency(t, filepath.Join(t.TempDir(), "mail.db"), 1)
	})
	t.Run("postgres", func(t *testing.T) {
		testIMAPMultiClientConsistency(t, pgtest.New(t), 1)
	})
	// Two nodes on one database: the clients and senders alternate
	// between them, so every session sees the other node's changes
	// through LISTEN/NOTIFY (mailstore/crossnode.go).
	t.Run("postgres-two-nodes", func(t *testing.T) {
		testIMAPMultiClientConsistency(t, pgtest.New(t), 2)
	})
}

func testIMAPMultiClientConsistency(t *testing.T, location string, nodes int) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv(ccSeedEnv); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: %v", ccSeedEnv, s, err)
		}
		seed = v
	}
	t.Logf("master seed %d (replay with %s=%d)", seed, ccSeedEnv, seed)

	w := newCCWorld(t, seed, location, nodes)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w.stop = cancel

	clients := make([]*ccClient, ccClients)
	for i := range clients {
		clients[i] = w.dialClient(t, i, seed)
	}
	senders := make([]*ccSender, ccSenders)
	for i := range senders {
		senders[i] = w.dialSMTP(t, i)
	}

	for round := range ccRounds {
		ticks := make(chan struct{}, ccClients*ccCommands)
		var sendersWG, clientsWG sync.WaitGroup
		for _, s := range senders {
			sendersWG.Go(func() { s.deliver(ctx, ticks) })
		}
		for _, c := range clients {
			clientsWG.Go(func() { c.run(ctx, ticks) })
		}
		clientsWG.Wait()
		close(ticks) // senders deliver what is left of their share, then stop
		sendersWG.Wait()
		if w.failed() {
			break
		}
		// Activity has stopped: every change is committed and published
		// (on every node, once each has heard the others). After a NOOP,
		// each view must match the store; at the end, after FETCH 1:*,
		// in full.
		w.syncNodes(t)
		last := round == ccRounds-1
		for _, c := range clients {
			c.checkpoint(round, last)
		}
		w.checkStore()
		if w.failed() {
			break
		}
	}
	for _, s := range senders {
		s.quit()
	}
	for _, c := range clients {
		c.logout()
	}
	w.report(t)
}

// ccWorld is what the clients share: the server, the log of what could
// legitimately remove a message, and the failures found.
type ccWorld struct {
	seed  uint64
	store *mailstore.Store
	// nodes are the stores of the servers, store first: more than one
	// on PostgreSQL, where clients and senders alternate between them.
	nodes []*mailstore.Store
	user  mailstore.UserID
	mbs   map[string]mailstore.MailboxID
	// smtpAddrs and imapAddrs are the servers', one per node.
	smtpAddrs []string
	imapAddrs []string
	deadline  time.Time
	stop      func()

	mu   sync.Mutex
	errs []string
	// deletable: UID ranges some client asked to mark \Deleted (before
	// the STORE was sent) or appended with \Deleted.
	deletable []ccRange
	// moved: UID ranges some client asked to MOVE away.
	moved []ccRange
	// copies: what COPY and MOVE created, from COPYUID: a copy of a
	// \Deleted message is \Deleted too.
	copies []ccCopy
	// ids maps stored instances to the X-Test-ID they carry, as learnt
	// from APPENDUID, COPYUID, FETCH bodies and SMTP deliveries.
	ids map[ccKey]string
	// acked: what the server acknowledged storing.
	acked []ccAck
	// expunged: EXPUNGE responses whose UID the client knew.
	expunged []ccExpunged
	// recent: the read-write client each message was \Recent to; RFC
	// 3501 §2.3.2 allows one at most.
	recent map[ccKey]int
	// delivered and appended count the acknowledgements.
	delivered, appended int
	// stats counts what the run exercised, for the log.
	stats map[string]int
}

type ccKey struct {
	mb  mailstore.MailboxID
	uid uint32
}

type ccRange struct {
	mb     mailstore.MailboxID
	lo, hi uint32
}

type ccCopy struct{ src, dst ccKey }

type ccAck struct {
	id  string
	how string
	key ccKey // zero if the instance was gone before it could be found
	// lo, hi bound the UIDs the SMTP delivery can have got in INBOX.
	lo, hi uint32
}

type ccExpunged struct {
	client int
	key    ccKey
	cmd    string
}

func newCCWorld(t *testing.T, seed uint64, location string, nodes int) *ccWorld {
	t.Helper()
	ctx := context.Background()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	store, err := mailstore.Open(ctx, location, mailstore.Options{
		Logger: logger, PasswordCost: bcrypt.MinCost,
	})
	if err != nil {
		t.Fatalf("mailstore.Open: %v", err)
	}
	t.Cleanup(func() {
		if err := store.Close(); err != nil {
			t.Errorf("store.Close: %v", err)
		}
	})
	u, err := store.AddUser(ctx, ccUser, ccPassword)
	if err != nil {
		t.Fatalf("AddUser: %v", err)
	}
	w := &ccWorld{seed: seed, store: store, user: u.ID, mbs: map[string]mailstore.MailboxID{},
		ids: map[ccKey]string{}, recent: map[ccKey]int{}, stats: map[string]int{}, deadline: time.Now().Add(ccRunDeadline)}
	for _, name := range ccMailboxes {
		mb, err := store.Mailbox(ctx, u.ID, name)
		if err != nil {
			t.Fatalf("Mailbox(%s): %v", name, err)
		}
		w.mbs[name] = mb.ID
	}

	w.nodes = []*mailstore.Store{store}
	for len(w.nodes) < nodes {
		other, err := mailstore.Open(ctx, location, mailstore.Options{Logger: logger, PasswordCost: bcrypt.MinCost})
		if err != nil {
			t.Fatalf("mailstore.Open (node %d): %v", len(w.nodes)+1, err)
		}
		t.Cleanup(func() {
			if err := other.Close(); err != nil {
				t.Errorf("store.Close: %v", err)
			}
		})
		w.nodes = append(w.nodes, other)
	}
	for _, node := range w.nodes {
		smtpAddr, imapAddr := serveMail(t, node, logger)
		w.smtpAddrs = append(w.smtpAddrs, smtpAddr)
		w.imapAddrs = append(w.imapAddrs, imapAddr)
	}
	return w
}

// syncNodes returns once every node has published what the others
// committed (mailstore.Store.SyncOtherNodes).
func (w *ccWorld) syncNodes(t *testing.T) {
	t.Helper()
	if len(w.nodes) < 2 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i, node := range w.nodes {
		if err := node.SyncOtherNodes(ctx); err != nil {
			w.fail("node %d: %v", i+1, err)
		}
	}
}

// fail records a failure and stops the run: later checks would only
// repeat it.
func (w *ccWorld) fail(format string, args ...any) {
	w.mu.Lock()
	if len(w.errs) < 40 {
		w.errs = append(w.errs, fmt.Sprintf(format, args...))
	}
	w.mu.Unlock()
	w.stop()
}

func (w *ccWorld) failed() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.errs) > 0
}

func (w *ccWorld) report(t *testing.T) {
	w.mu.Lock()
	defer w.mu.Unlock()
	t.Logf("%d SMTP deliveries, %d APPENDs acknowledged; %d EXPUNGE responses with known UIDs",
		w.delivered, w.appended, len(w.expunged))
	keys := slices.Sorted(maps.Keys(w.stats))
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, " %s=%d", k, w.stats[k])
	}
	t.Logf("exercised:%s", b.String())
	for _, e := range w.errs {
		t.Error(e)
	}
	if len(w.errs) > 0 {
		t.Logf("replay the command mixes with %s=%d", ccSeedEnv, w.seed)
	}
}

func (w *ccWorld) count(what string) {
	w.mu.Lock()
	w.stats[what]++
	w.mu.Unlock()
}

func (w *ccWorld) mbName(id mailstore.MailboxID) string {
	for name, mb := range w.mbs {
		if mb == id {
			return name
		}
	}
	return fmt.Sprintf("mailbox#%d", id)
}

// noteRecent records that a read-write client was shown k as \Recent:
// RFC 3501 §2.3.2, "this session is the first session to have been
// notified about this message", so no other read-write client may be.
func (w *ccWorld) noteRecent(k ccKey, client int) {
	w.mu.Lock()
	other, ok := w.recent[k]
	if !ok {
		w.recent[k] = client
	}
	w.mu.Unlock()
	if ok && other != client {
		w.fail("client %d: %s UID %d is \\Recent, but it was to client %d already", client, w.mbName(k.mb), k.uid, other)
	}
}

func (w *ccWorld) noteDeletable(r ccRange) {
	w.mu.Lock()
	w.deletable = append(w.deletable, r)
	w.mu.Unlock()
}

func (w *ccWorld) noteMoved(r ccRange) {
	w.mu.Lock()
	w.moved = append(w.moved, r)
	w.mu.Unlock()
}

// noteCopies records COPYUID: dst's copies carry src's flags and IDs.
func (w *ccWorld) noteCopies(src, dst mailstore.MailboxID, data *imap.CopyData) {
	if data == nil {
		return
	}
	s, ok1 := data.SourceUIDs.Nums()
	d, ok2 := data.DestUIDs.Nums()
	if !ok1 || !ok2 || len(s) != len(d) {
		w.fail("COPYUID %v %v: sets of different sizes", data.SourceUIDs, data.DestUIDs)
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for i := range s {
		c := ccCopy{ccKey{src, uint32(s[i])}, ccKey{dst, uint32(d[i])}}
		w.copies = append(w.copies, c)
		if id, ok := w.ids[c.src]; ok {
			w.ids[c.dst] = id
		}
	}
}

// noteID records that instance k carries id; a different ID for the same
// instance means two messages got mixed up.
func (w *ccWorld) noteID(k ccKey, id, how string) {
	w.mu.Lock()
	old, ok := w.ids[k]
	if !ok {
		w.ids[k] = id
	}
	w.mu.Unlock()
	if ok && old != id {
		w.fail("%s UID %d: %s says X-Test-ID %q, earlier %q", w.mbName(k.mb), k.uid, how, id, old)
	}
}

// ccSender is an SMTP connection that delivers to the user's INBOX.
type ccSender struct {
	w  *ccWorld
	id int
	c  *smtp.Client
	n  int // messages sent
}

func (w *ccWorld) dialSMTP(t *testing.T, id int) *ccSender {
	t.Helper()
	c, err := smtp.Dial(w.smtpAddrs[id%len(w.smtpAddrs)])
	if err != nil {
		t.Fatalf("SMTP dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	c.CommandTimeout = time.Minute
	c.SubmissionTimeout = time.Minute
	if err := c.Hello("client.test"); err != nil {
		t.Fatalf("SMTP EHLO: %v", err)
	}
	return &ccSender{w: w, id: id, c: c}
}

// deliver sends ccDeliveries messages, one per tick from the clients, so
// that they arrive while the clients work; once ticks is closed, it sends
// the rest of its share at once.
func (s *ccSender) deliver(ctx context.Context, ticks <-chan struct{}) {
	w := s.w
	for range ccDeliveries {
		<-ticks // closed at the end of the round: then no wait
		if ctx.Err() != nil {
			return
		}
		s.n++
		id := fmt.Sprintf("s%d-%d", s.id, s.n)
		before, err := w.store.Mailbox(ctx, w.user, "INBOX")
		if err != nil {
			w.fail("Mailbox(INBOX): %v", err)
			return
		}
		if err := ccSMTPSend(s.c, ccMessage(id, fmt.Sprintf("delivery %d of sender %d", s.n, s.id))); err != nil {
			w.fail("SMTP delivery %s: %v, want 250", id, err)
			return
		}
		w.noteDelivered(ctx, id, uint32(before.UIDNext))
	}
}

func (s *ccSender) quit() {
	if err := s.c.Quit(); err != nil && !s.w.failed() {
		s.w.fail("SMTP QUIT: %v", err)
	}
}

func ccSMTPSend(c *smtp.Client, raw []byte) error {
	if err := c.Mail(ccFrom, nil); err != nil {
		return err
	}
	if err := c.Rcpt(ccUser, nil); err != nil {
		return err
	}
	wc, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := wc.Write(raw); err != nil {
		wc.Close()
		return err
	}
	return wc.Close()
}

// noteDelivered finds the INBOX instance of a message that got 250: the
// lowest UID from uidNext on that carries its ID (copies of it come
// later). The store says 250 only after the commit, so the message is
// there unless a client already expunged or moved it.
func (w *ccWorld) noteDelivered(ctx context.Context, id string, uidNext uint32) {
	inbox := w.mbs["INBOX"]
	ack := ccAck{id: id, how: "SMTP delivery", lo: uidNext}
	err := w.store.Messages(ctx, inbox, mailstore.UIDSet{{Start: mailstore.UID(uidNext)}}, mailstore.FetchOptions{Body: true},
		func(m *mailstore.Message) error {
			ack.hi = max(ack.hi, uint32(m.UID))
			if ack.key == (ccKey{}) && ccTestID(m.Raw) == id {
				ack.key = ccKey{inbox, uint32(m.UID)}
			}
			return nil
		})
	if err != nil {
		w.fail("Messages(INBOX): %v", err)
		return
	}
	if ack.key == (ccKey{}) {
		// Gone already: its UID is below INBOX's UIDNEXT now.
		mb, err := w.store.Mailbox(ctx, w.user, "INBOX")
		if err != nil {
			w.fail("Mailbox(INBOX): %v", err)
			return
		}
		ack.hi = uint32(mb.UIDNext) - 1
	} else {
		w.noteID(ack.key, id, "SMTP delivery")
	}
	w.mu.Lock()
	w.acked = append(w.acked, ack)
	w.delivered++
	w.mu.Unlock()
}

func (w *ccWorld) noteAppended(k ccKey, id string) {
	w.noteID(k, id, "APPENDUID")
	w.mu.Lock()
	w.acked = append(w.acked, ccAck{id: id, how: "APPEND", key: k})
	w.appended++
	w.mu.Unlock()
}

// ccMessage is a message with a unique X-Test-ID.
func ccMessage(id, subject string) []byte {
	return fmt.Appendf(nil, "From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\nMessage-ID: <%s@consistency.test>\r\nX-Test-ID: %s\r\n\r\nBody of %s.\r\n",
		ccFrom, ccUser, subject, id, id, id)
}

// ccTestID returns the X-Test-ID of a raw message or header, "" if none.
func ccTestID(raw []byte) string {
	i := bytes.Index(raw, []byte("X-Test-ID: "))
	if i < 0 {
		return ""
	}
	rest := raw[i+len("X-Test-ID: "):]
	if j := bytes.IndexByte(rest, '\r'); j >= 0 {
		rest = rest[:j]
	}
	return string(rest)
}

// removable reports whether k may have left the store legitimately: it
// was in a MOVE's set, or marked \Deleted, or is a copy of one that was.
// The copy rule is generous (the copy may predate the mark), never strict.
func (w *ccWorld) removable() func(k ccKey) bool {
	in := func(rs []ccRange, k ccKey) bool {
		for _, r := range rs {
			if r.mb == k.mb && k.uid >= r.lo && k.uid <= r.hi {
				return true
			}
		}
		return false
	}
	del := map[ccKey]bool{}
	for changed := true; changed; {
		changed = false
		for _, c := range w.copies {
			if !del[c.dst] && (del[c.src] || in(w.deletable, c.src)) {
				del[c.dst] = true
				changed = true
			}
		}
	}
	return func(k ccKey) bool { return del[k] || in(w.deletable, k) || in(w.moved, k) }
}

// checkStore compares what the server still holds with what the clients
// and senders were told and did.
func (w *ccWorld) checkStore() {
	ctx := context.Background()
	w.mu.Lock()
	defer w.mu.Unlock()
	removable := w.removable()
	stored := map[ccKey]string{} // instance -> X-Test-ID
	for _, name := range ccMailboxes {
		id := w.mbs[name]
		mb, err := w.store.Mailbox(ctx, w.user, name)
		if err != nil {
			w.errs = append(w.errs, fmt.Sprintf("Mailbox(%s): %v", name, err))
			return
		}
		err = w.store.Messages(ctx, id, mailstore.AllUIDs(), mailstore.FetchOptions{Body: true}, func(m *mailstore.Message) error {
			stored[ccKey{id, uint32(m.UID)}] = ccTestID(m.Raw)
			return nil
		})
		if err != nil {
			w.errs = append(w.errs, fmt.Sprintf("Messages(%s): %v", name, err))
			return
		}
		// Every UID below UIDNEXT was given to a message of this mailbox:
		// one no longer stored must have been removable.
		for uid := uint32(1); uid < uint32(mb.UIDNext); uid++ {
			k := ccKey{id, uid}
			if _, ok := stored[k]; ok || removable(k) {
				continue
			}
			w.errs = append(w.errs, fmt.Sprintf("%s UID %d (X-Test-ID %q) is gone, but no client marked it \\Deleted or moved it",
				name, uid, w.ids[k]))
		}
	}
	for k, id := range stored {
		if id == "" {
			w.errs = append(w.errs, fmt.Sprintf("%s UID %d has no X-Test-ID", w.mbName(k.mb), k.uid))
		} else if want, ok := w.ids[k]; ok && want != id {
			w.errs = append(w.errs, fmt.Sprintf("%s UID %d holds X-Test-ID %q, want %q", w.mbName(k.mb), k.uid, id, want))
		}
	}
	for _, a := range w.acked {
		if a.key != (ccKey{}) {
			continue // its instance is checked above
		}
		// An SMTP delivery gone before it could be looked up: one of the
		// UIDs it can have got must have been removed legitimately.
		found := false
		for uid := a.lo; uid <= a.hi && !found; uid++ {
			k := ccKey{w.mbs["INBOX"], uid}
			_, ok := stored[k]
			found = !ok && removable(k)
		}
		if !found {
			w.errs = append(w.errs, fmt.Sprintf("%s %s got its OK, but no INBOX UID in %d:%d was removed legitimately",
				a.how, a.id, a.lo, a.hi))
		}
	}
	for _, e := range w.expunged {
		if _, ok := stored[e.key]; ok {
			w.errs = append(w.errs, fmt.Sprintf("client %d got EXPUNGE (during %s) for %s UID %d, which is still stored",
				e.client, e.cmd, w.mbName(e.key.mb), e.key.uid))
		}
	}
}
