package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"pushmail/mailstore"
)

// ccClient is one IMAP client of the consistency test: a real imapclient
// over a real socket, its view kept by its tap.
type ccClient struct {
	id      int
	w       *ccWorld
	c       *imapclient.Client
	tap     *ccTap
	rng     *rand.Rand
	appends int
}

func (w *ccWorld) dialClient(t *testing.T, id int, seed uint64) *ccClient {
	t.Helper()
	conn, err := net.Dial("tcp", w.imapAddrs[id%len(w.imapAddrs)])
	if err != nil {
		t.Fatalf("IMAP dial: %v", err)
	}
	if err := conn.SetDeadline(w.deadline); err != nil {
		t.Fatal(err)
	}
	tap := newCCTap(conn, w, id)
	c := &ccClient{id: id, w: w, tap: tap, c: imapclient.New(tap, nil),
		rng: rand.New(rand.NewPCG(seed, uint64(id)))}
	t.Cleanup(func() { c.c.Close() })
	if err := c.c.WaitGreeting(); err != nil {
		t.Fatalf("client %d: greeting: %v", id, err)
	}
	if err := c.c.Login(ccUser, ccPassword).Wait(); err != nil {
		t.Fatalf("client %d: LOGIN: %v", id, err)
	}
	// Learn the capabilities now, by asking: Caps() right after LOGIN
	// may still return the greeting's list (imapclient resets it on its
	// reader goroutine after the OK, and asks again on its own).
	caps, err := c.c.Capability().Wait()
	if err != nil || !caps.Has(imap.CapMove) || !caps.Has(imap.CapUIDPlus) {
		t.Fatalf("client %d: CAPABILITY = %v, %v; want MOVE and UIDPLUS", id, caps, err)
	}
	return c
}

// note adds a command to the client's trace, shown with its failures,
// and counts it.
func (c *ccClient) note(format string, args ...any) {
	cmd := fmt.Sprintf(format, args...)
	name := strings.Fields(cmd)[0]
	if name == "UID" {
		name = "UID " + strings.Fields(cmd)[1]
	}
	c.w.count(name)
	c.tap.mu.Lock()
	c.tap.trace = append(c.tap.trace, cmd)
	if len(c.tap.trace) > 12 {
		c.tap.trace = c.tap.trace[1:]
	}
	c.tap.mu.Unlock()
}

func (c *ccClient) fail(format string, args ...any) {
	c.tap.mu.Lock()
	defer c.tap.mu.Unlock()
	c.tap.fail(format, args...)
}

// view returns a copy of the client's view.
func (c *ccClient) view() ccView {
	c.tap.mu.Lock()
	defer c.tap.mu.Unlock()
	v := c.tap.v
	v.uids = slices.Clone(v.uids)
	v.flags = slices.Clone(v.flags)
	return v
}

// check reports err unless it is a NO that the command deserved
// (noOK): a write in a mailbox opened with EXAMINE.
func (c *ccClient) check(err error, what string, wantNO bool) {
	var ierr *imap.Error
	switch {
	case err == nil && wantNO:
		c.fail("%s in a read-only mailbox = OK, want NO", what)
	case err == nil:
	case wantNO && errors.As(err, &ierr) && ierr.Type == imap.StatusResponseTypeNo:
		c.w.count("NO in read-only mailbox")
	default:
		c.fail("%s: %v", what, err)
	}
}

// run issues a round's ccCommands random commands, letting a sender
// deliver every ccTickEvery of them.
func (c *ccClient) run(ctx context.Context, ticks chan<- struct{}) {
	for n := range ccCommands {
		if ctx.Err() != nil {
			return
		}
		if n%ccTickEvery == 0 {
			select {
			case ticks <- struct{}{}:
			default:
			}
		}
		c.step()
	}
}

func (c *ccClient) step() {
	v := c.view()
	if v.state != ccSelected {
		switch r := c.rng.IntN(10); {
		case r < 7:
			c.selectMailbox()
		case r < 9:
			c.appendMessage(v)
		default:
			c.noop()
		}
		return
	}
	if v.readOnly && c.rng.IntN(4) == 0 {
		// Writes fail under EXAMINE: do not linger.
		c.selectMailbox()
		return
	}
	r := c.rng.IntN(100)
	switch {
	case r < 14:
		c.fetchFlags(v, false)
	case r < 20:
		c.fetchFlags(v, true)
	case r < 25:
		c.fetchBody(v)
	case r < 31:
		c.fetchHeader(v)
	case r < 51:
		c.store(v)
	case r < 58:
		c.search(v)
	case r < 62:
		c.copyMessages(v)
	case r < 65:
		c.move(v)
	case r < 71:
		c.appendMessage(v)
	case r < 76:
		c.expunge(v)
	case r < 81:
		c.uidExpunge(v)
	case r < 83:
		c.close(v)
	case r < 85:
		c.unselect()
	case r < 91:
		c.noop()
	case r < 97:
		c.idle()
	default:
		c.selectMailbox()
	}
}

func (c *ccClient) mailbox() string { return ccMailboxes[c.rng.IntN(len(ccMailboxes))] }

func (c *ccClient) selectMailbox() {
	mb, ro := c.mailbox(), c.rng.IntN(6) == 0
	c.note("SELECT %s (read-only %v)", mb, ro)
	_, err := c.c.Select(mb, &imap.SelectOptions{ReadOnly: ro}).Wait()
	c.check(err, "SELECT "+mb, false)
}

// seqRange picks a range of sequence numbers of v, first and last
// 0-based.
func (c *ccClient) seqRange(v ccView) (first, last int) {
	n := len(v.uids)
	first = c.rng.IntN(n)
	if c.rng.IntN(2) == 0 {
		// A few hot messages: clients race on the same ones.
		first = c.rng.IntN(min(n, 3))
	}
	span := 1 + c.rng.IntN(4)
	if c.rng.IntN(8) == 0 {
		span = n
	}
	return first, min(n-1, first+span-1)
}

// knownRange picks a range of v whose first and last UIDs are known: it
// names exactly the UIDs between them, whatever the client knows of the
// ones in the middle. ok is false if no UID is known.
func (c *ccClient) knownRange(v ccView) (first, last int, ok bool) {
	var known []int
	for i, u := range v.uids {
		if u != 0 {
			known = append(known, i)
		}
	}
	if len(known) == 0 {
		return 0, 0, false
	}
	a := c.rng.IntN(len(known))
	if c.rng.IntN(2) == 0 {
		a = c.rng.IntN(min(len(known), 3))
	}
	b := min(len(known)-1, a+c.rng.IntN(3))
	return known[a], known[b], true
}

// numSet returns the set of v's messages first..last, by sequence number
// or, if their UIDs are known, sometimes by UID.
func (c *ccClient) numSet(v ccView, first, last int, byUID bool) imap.NumSet {
	if byUID && v.uids[first] != 0 && v.uids[last] != 0 {
		return imap.UIDSet{{Start: imap.UID(v.uids[first]), Stop: imap.UID(v.uids[last])}}
	}
	return imap.SeqSet{{Start: uint32(first + 1), Stop: uint32(last + 1)}}
}

func (c *ccClient) fetchFlags(v ccView, byUID bool) {
	var set imap.NumSet = imap.SeqSet{{Start: 1, Stop: 0}}
	if byUID {
		set = imap.UIDSet{{Start: 1, Stop: 0}}
	}
	if len(v.uids) > 0 && c.rng.IntN(3) > 0 {
		first, last := c.seqRange(v)
		set = c.numSet(v, first, last, byUID)
	}
	c.note("FETCH %v (UID FLAGS)", set)
	c.check(c.c.Fetch(set, &imap.FetchOptions{UID: true, Flags: true}).Close(), fmt.Sprintf("FETCH %v", set), false)
}

func (c *ccClient) fetchBody(v ccView) {
	if len(v.uids) == 0 {
		c.noop()
		return
	}
	first, _ := c.seqRange(v)
	last := min(len(v.uids)-1, first+c.rng.IntN(2))
	set := c.numSet(v, first, last, c.rng.IntN(2) == 0)
	peek := c.rng.IntN(2) == 0
	c.note("FETCH %v BODY[] (peek %v)", set, peek)
	opts := &imap.FetchOptions{UID: true, Flags: c.rng.IntN(2) == 0, BodySection: []*imap.FetchItemBodySection{{Peek: peek}}}
	c.check(c.c.Fetch(set, opts).Close(), fmt.Sprintf("FETCH %v BODY[]", set), false)
}

func (c *ccClient) fetchHeader(v ccView) {
	var set imap.NumSet = imap.UIDSet{{Start: 1, Stop: 0}}
	if len(v.uids) > 0 && c.rng.IntN(2) == 0 {
		first, last := c.seqRange(v)
		set = c.numSet(v, first, last, true)
	}
	c.note("FETCH %v BODY.PEEK[HEADER.FIELDS (X-Test-ID)]", set)
	opts := &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{
		{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"X-Test-ID"}, Peek: true}}}
	c.check(c.c.Fetch(set, opts).Close(), fmt.Sprintf("FETCH %v header", set), false)
}

// store changes flags. A STORE that may set \Deleted names only ranges
// whose UIDs the client knows, and is logged before it is sent: any
// message it covers may then be expunged. A .SILENT STORE's effect is
// applied to the view as it is sent: the server executes it before
// writing any later FETCH, and never writes the older ones (imapd
// store.go).
func (c *ccClient) store(v ccView) {
	if len(v.uids) == 0 {
		c.noop()
		return
	}
	op := []imap.StoreFlagsOp{imap.StoreFlagsAdd, imap.StoreFlagsAdd, imap.StoreFlagsDel, imap.StoreFlagsSet}[c.rng.IntN(4)]
	var flags []imap.Flag
	for range 1 + c.rng.IntN(2) {
		if f := ccFlags[c.rng.IntN(len(ccFlags))]; !slices.Contains(flags, f) {
			flags = append(flags, f)
		}
	}
	if op == imap.StoreFlagsSet && c.rng.IntN(6) == 0 {
		flags = nil // FLAGS () clears them all
	}
	deleting := op != imap.StoreFlagsDel && slices.Contains(flags, imap.FlagDeleted)
	silent := c.rng.IntN(3) == 0
	byUID := c.rng.IntN(2) == 0
	var first, last int
	if deleting || silent {
		var ok bool
		if first, last, ok = c.knownRange(v); !ok {
			if deleting || byUID {
				c.fetchFlags(v, false)
				return
			}
			first, last = c.seqRange(v)
		}
	} else {
		first, last = c.seqRange(v)
	}
	set := c.numSet(v, first, last, byUID)
	if deleting && !v.readOnly {
		c.w.noteDeletable(ccRange{c.w.mbs[v.mailbox], v.uids[first], v.uids[last]})
	}
	if silent {
		c.w.count("STORE .SILENT")
	}
	if silent && !v.readOnly {
		c.tap.mu.Lock()
		tv := &c.tap.v
		// The view has only grown since v was taken: no command ran.
		for i := first; i <= last && i < len(tv.flags); i++ {
			tv.flags[i] = ccApplyFlags(tv.flags[i], op, flags)
		}
		c.tap.mu.Unlock()
	}
	what := fmt.Sprintf("STORE %v %s %v (silent %v)", set, ccOpName(op), flags, silent)
	c.note("%s", what)
	err := c.c.Store(set, &imap.StoreFlags{Op: op, Silent: silent, Flags: flags}, nil).Close()
	c.check(err, what, v.readOnly)
}

func ccOpName(op imap.StoreFlagsOp) string {
	switch op {
	case imap.StoreFlagsAdd:
		return "+FLAGS"
	case imap.StoreFlagsDel:
		return "-FLAGS"
	}
	return "FLAGS"
}

// ccApplyFlags applies a STORE to known flags; unknown ones (nil) stay
// unknown unless the STORE sets them all.
func ccApplyFlags(known []string, op imap.StoreFlagsOp, flags []imap.Flag) []string {
	var fs []string
	for _, f := range flags {
		fs = append(fs, string(f))
	}
	fs = ccNormFlags(fs)
	switch {
	case op == imap.StoreFlagsSet:
		return fs
	case known == nil:
		return nil
	case op == imap.StoreFlagsAdd:
		return ccNormFlags(append(slices.Clone(known), fs...))
	default:
		out := []string{}
		for _, f := range known {
			if !slices.Contains(fs, f) {
				out = append(out, f)
			}
		}
		return out
	}
}

func (c *ccClient) search(v ccView) {
	var crit imap.SearchCriteria
	switch c.rng.IntN(6) {
	case 0:
		crit.Flag = []imap.Flag{imap.FlagDeleted}
	case 1:
		crit.NotFlag = []imap.Flag{imap.FlagSeen}
	case 2:
		crit.Flag = []imap.Flag{"$Label1"}
	case 3:
		if len(v.uids) > 0 {
			first, last := c.seqRange(v)
			crit.SeqNum = []imap.SeqSet{{{Start: uint32(first + 1), Stop: uint32(last + 1)}}}
		}
	case 4:
		crit.UID = []imap.UIDSet{{{Start: 1, Stop: imap.UID(1 + c.rng.IntN(200))}}}
	}
	var opts *imap.SearchOptions
	if c.rng.IntN(3) == 0 {
		opts = &imap.SearchOptions{ReturnAll: true, ReturnCount: true, ReturnMin: true, ReturnMax: true}
	}
	byUID := c.rng.IntN(2) == 0
	c.note("SEARCH (uid %v, return %v) %s", byUID, opts != nil, ccCriteria(&crit))
	var err error
	if byUID {
		_, err = c.c.UIDSearch(&crit, opts).Wait()
	} else {
		_, err = c.c.Search(&crit, opts).Wait()
	}
	c.check(err, "SEARCH", false)
}

// ccCriteria summarises the criteria search uses.
func ccCriteria(crit *imap.SearchCriteria) string {
	var parts []string
	for _, f := range crit.Flag {
		parts = append(parts, "FLAG "+string(f))
	}
	for _, f := range crit.NotFlag {
		parts = append(parts, "NOT FLAG "+string(f))
	}
	for _, s := range crit.SeqNum {
		parts = append(parts, s.String())
	}
	for _, s := range crit.UID {
		parts = append(parts, "UID "+s.String())
	}
	if len(parts) == 0 {
		return "ALL"
	}
	return strings.Join(parts, " ")
}

func (c *ccClient) copyMessages(v ccView) {
	if len(v.uids) == 0 {
		c.noop()
		return
	}
	first, last := c.seqRange(v)
	set, dest := c.numSet(v, first, last, c.rng.IntN(2) == 0), c.mailbox()
	c.note("COPY %v %s", set, dest)
	data, err := c.c.Copy(set, dest).Wait()
	c.check(err, fmt.Sprintf("COPY %v %s", set, dest), false)
	if err == nil {
		c.w.noteCopies(c.w.mbs[v.mailbox], c.w.mbs[dest], data)
	}
}

// move moves a range whose UIDs are known, logged before it is sent.
func (c *ccClient) move(v ccView) {
	first, last, ok := c.knownRange(v)
	if !ok {
		c.fetchFlags(v, true)
		return
	}
	dest := c.mailbox()
	for dest == v.mailbox {
		dest = c.mailbox()
	}
	set := c.numSet(v, first, last, c.rng.IntN(2) == 0)
	if !v.readOnly {
		c.w.noteMoved(ccRange{c.w.mbs[v.mailbox], v.uids[first], v.uids[last]})
	}
	what := fmt.Sprintf("MOVE %v %s", set, dest)
	c.note("%s", what)
	data, err := c.c.Move(set, dest).Wait()
	c.check(err, what, v.readOnly)
	if err == nil && data != nil && data.UIDValidity != 0 {
		src, ok1 := data.SourceUIDs.(imap.UIDSet)
		dst, ok2 := data.DestUIDs.(imap.UIDSet)
		if !ok1 || !ok2 {
			c.fail("%s: COPYUID sets %v %v", what, data.SourceUIDs, data.DestUIDs)
			return
		}
		c.w.noteCopies(c.w.mbs[v.mailbox], c.w.mbs[dest], &imap.CopyData{UIDValidity: data.UIDValidity, SourceUIDs: src, DestUIDs: dst})
	}
}

func (c *ccClient) appendMessage(v ccView) {
	dest := c.mailbox()
	if v.state == ccSelected && c.rng.IntN(2) == 0 {
		dest = v.mailbox
	}
	var flags []imap.Flag
	if c.rng.IntN(2) == 0 {
		flags = append(flags, ccFlags[c.rng.IntN(len(ccFlags))])
	}
	c.appends++
	id := fmt.Sprintf("a%d-%d", c.id, c.appends)
	raw := ccMessage(id, fmt.Sprintf("append %d of client %d", c.appends, c.id))
	what := fmt.Sprintf("APPEND %s %v (%s)", dest, flags, id)
	c.note("%s", what)
	cmd := c.c.Append(dest, int64(len(raw)), &imap.AppendOptions{Flags: flags})
	_, werr := cmd.Write(raw)
	cerr := cmd.Close()
	data, err := cmd.Wait()
	if err = errors.Join(werr, cerr, err); err != nil {
		c.fail("%s: %v", what, err)
		return
	}
	if data == nil || data.UID == 0 {
		c.fail("%s: no APPENDUID", what)
		return
	}
	k := ccKey{c.w.mbs[dest], uint32(data.UID)}
	if slices.Contains(flags, imap.FlagDeleted) {
		c.w.noteDeletable(ccRange{k.mb, k.uid, k.uid})
	}
	c.w.noteAppended(k, id)
}

func (c *ccClient) expunge(v ccView) {
	c.note("EXPUNGE")
	c.check(c.c.Expunge().Close(), "EXPUNGE", v.readOnly)
}

// uidExpunge sends UID EXPUNGE with a set that may hold \Deleted
// messages, messages without \Deleted and UIDs beyond the last.
func (c *ccClient) uidExpunge(v ccView) {
	var set imap.UIDSet
	var top uint32
	for _, u := range v.uids {
		top = max(top, u)
	}
	switch c.rng.IntN(4) {
	case 0:
		set = imap.UIDSet{{Start: 1, Stop: 0}}
	case 1:
		set = imap.UIDSet{{Start: imap.UID(top + 1), Stop: imap.UID(top + 100)}}
	default:
		if first, last, ok := c.knownRange(v); ok {
			set.AddRange(imap.UID(v.uids[first]), imap.UID(v.uids[last]))
		}
		set.AddNum(imap.UID(top + 1 + uint32(c.rng.IntN(5))))
	}
	what := fmt.Sprintf("UID EXPUNGE %v", set)
	c.note("%s", what)
	c.check(c.c.UIDExpunge(set).Close(), what, v.readOnly)
}

func (c *ccClient) close(v ccView) {
	c.note("CLOSE")
	c.check(c.c.UnselectAndExpunge().Wait(), "CLOSE", false)
}

func (c *ccClient) unselect() {
	c.note("UNSELECT")
	c.check(c.c.Unselect().Wait(), "UNSELECT", false)
}

func (c *ccClient) noop() {
	c.note("NOOP")
	c.check(c.c.Noop().Wait(), "NOOP", false)
}

// idle runs IDLE until the first update or ccIdleBound, whichever comes
// first, then DONE.
func (c *ccClient) idle() {
	select {
	case <-c.tap.events:
	default:
	}
	c.note("IDLE")
	cmd, err := c.c.Idle()
	if err != nil {
		c.fail("IDLE: %v", err)
		return
	}
	timer := time.NewTimer(time.Duration(1+c.rng.IntN(int(ccIdleBound/time.Millisecond))) * time.Millisecond)
	select {
	case <-c.tap.events:
		c.w.count("IDLE ended by an update")
	case <-timer.C:
	}
	timer.Stop()
	if err := cmd.Close(); err != nil {
		c.fail("IDLE DONE: %v", err)
		return
	}
	c.check(cmd.Wait(), "IDLE", false)
}

// checkpoint runs once all activity has stopped: after a NOOP, the view
// must match the store as far as the client knows it; at the end, after
// FETCH 1:* (UID FLAGS), entirely.
func (c *ccClient) checkpoint(round int, last bool) {
	c.noop()
	if c.w.failed() {
		return
	}
	c.compare(fmt.Sprintf("at checkpoint %d, after NOOP,", round), false)
	v := c.view()
	if !last || v.state != ccSelected || len(v.uids) == 0 {
		return
	}
	c.check(c.c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true, Flags: true}).Close(), "final FETCH 1:*", false)
	c.compare("at the end, after FETCH 1:* (UID FLAGS),", true)
}

// compare checks the view against the store; with complete, every UID
// and flag must be known.
func (c *ccClient) compare(when string, complete bool) {
	v := c.view()
	if v.state != ccSelected {
		return
	}
	// imapclient parses the same responses: its count checks the tap's.
	if mb := c.c.Mailbox(); mb == nil || int(mb.NumMessages) != len(v.uids) {
		c.fail("%s: %s the tap counts %d messages, imapclient %v", v.mailbox, when, len(v.uids), mb)
		return
	}
	type msg struct {
		uid   uint32
		flags []string
	}
	var stored []msg
	err := c.w.store.Messages(context.Background(), c.w.mbs[v.mailbox], mailstore.AllUIDs(), mailstore.FetchOptions{},
		func(m *mailstore.Message) error {
			stored = append(stored, msg{uint32(m.UID), ccNormFlags(m.Flags)})
			return nil
		})
	if err != nil {
		c.fail("Messages(%s): %v", v.mailbox, err)
		return
	}
	if len(v.uids) != len(stored) {
		c.fail("%s: %s the client knows %d messages, the store holds %d", v.mailbox, when, len(v.uids), len(stored))
		return
	}
	var bad []string
	for i, m := range stored {
		switch {
		case v.uids[i] == 0 && complete:
			bad = append(bad, fmt.Sprintf("%d: UID unknown, stored %d", i+1, m.uid))
		case v.uids[i] != 0 && v.uids[i] != m.uid:
			bad = append(bad, fmt.Sprintf("%d: UID %d, stored %d", i+1, v.uids[i], m.uid))
		case v.flags[i] == nil && complete:
			bad = append(bad, fmt.Sprintf("%d (UID %d): flags unknown", i+1, m.uid))
		case v.flags[i] != nil && !slices.Equal(v.flags[i], m.flags):
			bad = append(bad, fmt.Sprintf("%d (UID %d): flags %v, stored %v", i+1, m.uid, v.flags[i], m.flags))
		}
	}
	if len(bad) > 0 {
		if len(bad) > 8 {
			bad = append(bad[:8], "…")
		}
		c.fail("%s: %s the view differs from the store: %s", v.mailbox, when, strings.Join(bad, "; "))
	}
}

func (c *ccClient) logout() {
	if err := c.c.Logout().Wait(); err != nil && !c.w.failed() {
		c.fail("LOGOUT: %v", err)
	}
}
