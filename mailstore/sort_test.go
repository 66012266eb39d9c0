package mailstore

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"
)

func TestSortInfo(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "test.db")
	s := openStoreAt(t, path, Options{})
	rcpt := addUser(t, s, "alice@localhost")
	msgs := []string{
		"From: Zed <zed@example.org>\r\nTo: \"Adam\" <adam@example.org>, b@example.org\r\nCc: undisclosed:;, carol@example.com\r\n" +
			"Subject: =?utf-8?q?Re=3A_caf=C3=A9?=\r\nDate: Mon, 3 Jan 2011 12:00:00 +0200\r\nMessage-ID: <one@x>\r\n" +
			"In-Reply-To: <zero@x> <other@x>\r\nReferences: <root@x>\r\n <zero@x>\r\n\r\nbody\r\n",
		"From: <mike@example.org>\r\nSubject: no date\r\n\r\nbody\r\n",
		"Subject: old row\r\nReferences: <r1@x> <r2@x>\r\nMessage-ID: <three@x>\r\n\r\nbody\r\n",
		"Subject: old row without references\r\n\r\nbody\r\n",
	}
	var uids []UID
	for _, m := range msgs {
		res, err := s.Append(ctx, rcpt.Mailbox, []byte(m), nil, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), 0)
		if err != nil {
			t.Fatalf("Append() = %v", err)
		}
		uids = append(uids, res.UID)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// The file as the schema before sortKeysVersion wrote it (no sort
	// keys: the migration writes them on open, backfillSortKeys), with
	// messages 3 and 4 as stored before Envelope.References existed: no
	// "references" key in their stored envelope.
	db, err := sql.Open("sqlite3", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE bodies SET parsed = json_remove(parsed, '$.env.references')
		WHERE id IN (SELECT body_id FROM messages WHERE uid IN (?, ?))`, uids[2], uids[3]); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(undoSaveDate + undoSchemaBodyText + undoSortKeys + fmt.Sprintf("PRAGMA user_version = %d", sortKeysVersion-1)); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStoreAt(t, path, Options{})
	var keys, bodies int
	if err := s.rdb.QueryRow("SELECT (SELECT COUNT(*) FROM sortkeys), (SELECT COUNT(*) FROM bodies)").Scan(&keys, &bodies); err != nil {
		t.Fatal(err)
	}
	if keys != bodies || bodies != len(msgs) {
		t.Fatalf("after the migration: %d sort key rows for %d bodies, want %d each", keys, bodies, len(msgs))
	}

	all := SortFields{Sent: true, Subject: true, From: true, To: true, Cc: true, DisplayFrom: true, DisplayTo: true, Threading: true}
	got, err := s.SortInfo(ctx, rcpt.Mailbox, uids, all)
	if err != nil {
		t.Fatalf("SortInfo() = %v", err)
	}
	if len(got) != 4 {
		t.Fatalf("SortInfo() = %d messages, want 4", len(got))
	}
	m := got[0]
	if !m.Sent.Equal(time.Date(2011, 1, 3, 10, 0, 0, 0, time.UTC)) || m.Subject != "Re: café" ||
		m.FromMailbox != "zed" || m.ToMailbox != "adam" || m.CcMailbox != "carol" ||
		m.DisplayFrom != "Zed" || m.DisplayTo != "Adam" || m.MessageID != "one@x" ||
		!slices.Equal(m.InReplyTo, []string{"zero@x", "other@x"}) || !slices.Equal(m.References, []string{"root@x", "zero@x"}) {
		t.Errorf("SortInfo()[0] = %+v", m)
	}
	if m := got[1]; !m.Sent.IsZero() || m.DisplayFrom != "mike@example.org" || m.FromMailbox != "mike" ||
		m.ToMailbox != "" || m.MessageID != "" || m.References != nil || m.Size == 0 ||
		!m.InternalDate.Equal(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("SortInfo()[1] = %+v", m)
	}
	if m := got[2]; !slices.Equal(m.References, []string{"r1@x", "r2@x"}) || m.MessageID != "three@x" {
		t.Errorf("SortInfo()[2], an old row, References = %q, MessageID %q; want [r1@x r2@x] from the header", m.References, m.MessageID)
	}
	if m := got[3]; m.References != nil {
		t.Errorf("SortInfo()[3] References = %q, want none", m.References)
	}

	// A subset, with a UID that is not in the mailbox; only what is asked.
	got, err = s.SortInfo(ctx, rcpt.Mailbox, []UID{uids[1], uids[3], uids[3] + 10}, SortFields{})
	if err != nil {
		t.Fatalf("SortInfo(subset) = %v", err)
	}
	if len(got) != 2 || got[0].UID != uids[1] || got[1].UID != uids[3] || got[0].Subject != "" || got[0].Size == 0 {
		t.Errorf("SortInfo(subset) = %+v, want UIDs %d, %d without subjects", got, uids[1], uids[3])
	}
}

// The cache answers what it has read, reads what arrived since, reads
// again when asked for more fields, and forgets expunged messages.
func TestSortInfoCache(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openTestStore(t, Options{})
	rcpt := addUser(t, s, "alice@localhost")
	var uids []UID
	appendN := func(n int) {
		for range n {
			i := len(uids)
			msg := fmt.Sprintf("Subject: s%d\r\nMessage-ID: <%d@x>\r\nDate: Mon, 3 Jan 2011 10:00:%02d +0000\r\n\r\nb\r\n", i, i, i%60)
			res, err := s.Append(ctx, rcpt.Mailbox, []byte(msg), nil, time.Time{}, 0)
			if err != nil {
				t.Fatalf("Append() = %v", err)
			}
			uids = append(uids, res.UID)
		}
	}
	check := func(what string, want []UID, f SortFields) []SortInfo {
		t.Helper()
		got, err := s.SortInfo(ctx, rcpt.Mailbox, want, f)
		if err != nil {
			t.Fatalf("%s: SortInfo() = %v", what, err)
		}
		if len(got) != len(want) {
			t.Fatalf("%s: SortInfo() = %d messages, want %d", what, len(got), len(want))
		}
		for i, m := range got {
			n := int(m.UID) - int(uids[0])
			if m.UID != want[i] || f.Subject != (m.Subject == fmt.Sprintf("s%d", n)) ||
				f.Threading != (m.MessageID == fmt.Sprintf("%d@x", n)) || f.Sent == m.Sent.IsZero() {
				t.Fatalf("%s: SortInfo()[%d] = %+v, want UID %d with fields %+v", what, i, m, want[i], f)
			}
		}
		return got
	}
	appendN(10)
	check("first", uids, SortFields{Sent: true})
	check("cached, fewer fields", uids[2:5], SortFields{})
	appendN(5)
	check("new messages", uids, SortFields{Sent: true})
	check("more fields", []UID{uids[0], uids[7], uids[14]}, SortFields{Sent: true, Subject: true, Threading: true})
	check("all of them, cached", uids, SortFields{Subject: true})
	if n := s.sorts.size(rcpt.Mailbox); n != len(uids) {
		t.Errorf("cached entries = %d, want %d", n, len(uids))
	}
	// Older messages read after newer ones: merged into the kept
	// entries in UID order.
	s.sorts.drop(rcpt.Mailbox)
	check("the newest first", uids[8:], SortFields{Sent: true})
	check("then the older too", []UID{uids[1], uids[9], uids[10]}, SortFields{Sent: true})
	check("all, after a merge", uids, SortFields{Sent: true})
	if n := s.sorts.size(rcpt.Mailbox); n != len(uids) {
		t.Errorf("cached entries after a merge = %d, want %d", n, len(uids))
	}

	// A UID expunged after it was read may still be answered (the
	// caller passes a Search result); one never read is left out.
	if _, err := s.StoreFlags(ctx, rcpt.Mailbox, UIDSetOf(uids[3]), FlagsAdd, []string{FlagDeleted}, 0); err != nil {
		t.Fatalf("StoreFlags() = %v", err)
	}
	if _, err := s.Expunge(ctx, rcpt.Mailbox, UIDSetOf(uids[3]), 0); err != nil {
		t.Fatalf("Expunge() = %v", err)
	}
	got, err := s.SortInfo(ctx, rcpt.Mailbox, []UID{uids[2], uids[14] + 1}, SortFields{Sent: true})
	if err != nil || len(got) != 1 || got[0].UID != uids[2] {
		t.Errorf("SortInfo(a UID never delivered) = %+v, %v; want only UID %d", got, err, uids[2])
	}
}

// TestParseSent: the fast reading of sortkeys.sent gives time.Parse's
// instant for what encoding/json writes, and falls back to it (or to
// zero) for anything else.
func TestParseSent(t *testing.T) {
	for _, s := range []string{
		"2024-03-04T09:05:00Z",
		"2024-03-04T09:05:00+01:00",
		"2024-03-04T09:05:00-09:30",
		"2024-03-04T09:05:00.5Z",
		"2024-03-04T09:05:00.123456789+05:45",
		"0001-01-01T00:00:00Z",
		"1969-12-31T23:59:59-00:01",
		"2024-02-29T12:00:00Z",
		"2023-02-29T12:00:00Z",            // no such day: time.Parse refuses
		"2024-03-04T09:05:00.Z",           // a fraction without digits
		"2024-03-04T09:05:00.1234567891Z", // ten digits
		"2024-03-04T24:00:00Z",
		"2024-03-04 09:05:00Z",
		"2024-03-04T09:05:00+0100",
		"2024-03-04T09:05:00",
		"garbage",
		"",
	} {
		want, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			want = time.Time{}
		}
		if got := parseSent([]byte(s)); !got.Equal(want) || got.IsZero() != want.IsZero() {
			t.Errorf("parseSent(%q) = %v; want %v (time.Parse)", s, got, want)
		}
	}
}

// widenMsg is message i of the widening tests: every field SortInfo
// reads tells i.
func widenMsg(i int) string {
	refs := ""
	if i > 0 {
		refs = fmt.Sprintf("In-Reply-To: <%d@x>\r\nReferences: <0@x> <%d@x>\r\n", i-1, i-1)
	}
	return fmt.Sprintf("From: f%d@x\r\nTo: t%d@x\r\nSubject: s%d\r\nMessage-ID: <%d@x>\r\n%sDate: Mon, 3 Jan 2011 10:%02d:%02d +0000\r\n\r\nb\r\n",
		i, i, i, i, refs, i/60%60, i%60)
}

// checkWidenInfo checks that m holds exactly the fields f of message i
// (widenMsg).
func checkWidenInfo(m *SortInfo, i int, f SortFields) error {
	want := SortInfo{UID: m.UID, InternalDate: m.InternalDate, Size: m.Size}
	if f.Sent {
		want.Sent = time.Date(2011, 1, 3, 10, i/60%60, i%60, 0, time.UTC)
	}
	if f.Subject {
		want.Subject = fmt.Sprintf("s%d", i)
	}
	if f.From {
		want.FromMailbox = fmt.Sprintf("f%d", i)
	}
	if f.To {
		want.ToMailbox = fmt.Sprintf("t%d", i)
	}
	if f.Threading {
		want.MessageID = fmt.Sprintf("%d@x", i)
		if i > 0 {
			want.InReplyTo = []string{fmt.Sprintf("%d@x", i-1)}
			want.References = []string{"0@x", fmt.Sprintf("%d@x", i-1)}
		}
	}
	if !m.Sent.Equal(want.Sent) || m.Subject != want.Subject || m.FromMailbox != want.FromMailbox ||
		m.ToMailbox != want.ToMailbox || m.CcMailbox != "" || m.DisplayFrom != "" || m.DisplayTo != "" ||
		m.MessageID != want.MessageID || !slices.Equal(m.InReplyTo, want.InReplyTo) || !slices.Equal(m.References, want.References) {
		return fmt.Errorf("UID %d = %+v, want message %d with fields %+v: %+v", m.UID, *m, i, f, want)
	}
	return nil
}

// A SortInfo asking for more fields than the cached entries hold (THREAD
// after SORT (DATE)), after other sessions expunged, delivered and
// flagged messages: the answer is what a read of the database gives,
// and the cache holds the mailbox's messages with the wider fields.
func TestSortInfoWiden(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openTestStore(t, Options{})
	rcpt := addUser(t, s, "alice@localhost")
	index := map[UID]int{}
	appendN := func(n int) {
		for range n {
			i := len(index)
			res, err := s.Append(ctx, rcpt.Mailbox, []byte(widenMsg(i)), nil, time.Time{}, 0)
			if err != nil {
				t.Fatalf("Append() = %v", err)
			}
			index[res.UID] = i
		}
	}
	current := func() []UID {
		t.Helper()
		uids, err := s.UIDs(ctx, rcpt.Mailbox)
		if err != nil {
			t.Fatalf("UIDs() = %v", err)
		}
		return uids
	}
	appendN(20)
	narrow := SortFields{Sent: true}
	if _, err := s.SortInfo(ctx, rcpt.Mailbox, current(), narrow); err != nil {
		t.Fatalf("SortInfo(Sent) = %v", err)
	}
	// Meanwhile: an expunge, deliveries, a flag change.
	uids := current()
	if _, err := s.StoreFlags(ctx, rcpt.Mailbox, UIDSetOf(uids[3], uids[11]), FlagsAdd, []string{FlagDeleted}, 0); err != nil {
		t.Fatalf("StoreFlags() = %v", err)
	}
	if _, err := s.Expunge(ctx, rcpt.Mailbox, UIDSetOf(uids[3], uids[11]), 0); err != nil {
		t.Fatalf("Expunge() = %v", err)
	}
	appendN(3)
	if _, err := s.StoreFlags(ctx, rcpt.Mailbox, UIDSetOf(uids[5]), FlagsAdd, []string{FlagFlagged}, 0); err != nil {
		t.Fatalf("StoreFlags() = %v", err)
	}

	wide := SortFields{Sent: true, Subject: true, Threading: true}
	uids = current()
	got, err := s.SortInfo(ctx, rcpt.Mailbox, uids, wide)
	if err != nil {
		t.Fatalf("SortInfo(Sent, Subject, Threading) = %v", err)
	}
	want, err := s.readSortInfo(ctx, rcpt.Mailbox, uids, wide)
	if err != nil {
		t.Fatalf("readSortInfo() = %v", err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("widened SortInfo() = %+v\nwant the database's %+v", got, want)
	}
	for i := range got {
		if err := checkWidenInfo(&got[i], index[got[i].UID], wide); err != nil {
			t.Error(err)
		}
	}
	s.sorts.mu.Lock()
	box := s.sorts.boxes[rcpt.Mailbox]
	s.sorts.mu.Unlock()
	if box == nil || box.fields != wide || len(box.infos) != len(uids) {
		t.Errorf("cache after widening = %+v, want %d entries with %+v", box, len(uids), wide)
	}
	// Fewer fields again: answered from the wide entries, projected.
	got, err = s.SortInfo(ctx, rcpt.Mailbox, uids, SortFields{Subject: true})
	if err != nil || len(got) != len(uids) {
		t.Fatalf("SortInfo(Subject) = %d, %v; want %d", len(got), err, len(uids))
	}
	for i := range got {
		if err := checkWidenInfo(&got[i], index[got[i].UID], SortFields{Subject: true}); err != nil {
			t.Error(err)
		}
	}
}

// Sessions asking for different fields at once, while messages arrive,
// go and change flags, each get exactly the fields they ask for, for
// every message they ask for that stays (run with -race: answers are
// shared with the cache, entries replaced under the readers).
func TestSortInfoWidenConcurrent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openTestStore(t, Options{})
	rcpt := addUser(t, s, "alice@localhost")
	var mu sync.Mutex
	index := map[UID]int{}
	doomed := map[UID]bool{} // expunged at some point: may be missing
	next := 0                // the next message's number; one goroutine appends
	appendOne := func() error {
		res, err := s.Append(ctx, rcpt.Mailbox, []byte(widenMsg(next)), nil, time.Time{}, 0)
		if err == nil {
			mu.Lock()
			index[res.UID] = next
			mu.Unlock()
			next++
		}
		return err
	}
	for range 200 {
		if err := appendOne(); err != nil {
			t.Fatalf("Append() = %v", err)
		}
	}
	fieldSets := []SortFields{{Sent: true}, {Sent: true, Subject: true, Threading: true}, {From: true}, {To: true, Subject: true}, {}}
	const readers, rounds = 4, 30
	errs := make(chan error, readers+1)
	var wg sync.WaitGroup
	wg.Go(func() { // deliveries, expunges and flag changes
		for r := range rounds {
			if err := appendOne(); err != nil {
				errs <- err
				return
			}
			uids, err := s.UIDs(ctx, rcpt.Mailbox)
			if err != nil {
				errs <- err
				return
			}
			victim := uids[(r*37)%len(uids)]
			mu.Lock()
			doomed[victim] = true
			mu.Unlock()
			if _, err := s.StoreFlags(ctx, rcpt.Mailbox, UIDSetOf(victim), FlagsAdd, []string{FlagDeleted}, 0); err != nil {
				errs <- err
				return
			}
			if _, err := s.Expunge(ctx, rcpt.Mailbox, UIDSetOf(victim), 0); err != nil {
				errs <- err
				return
			}
			if _, err := s.StoreFlags(ctx, rcpt.Mailbox, UIDSetOf(uids[r%len(uids)]), FlagsAdd, []string{FlagSeen}, 0); err != nil {
				errs <- err
				return
			}
		}
	})
	for g := range readers {
		wg.Go(func() {
			for r := range rounds {
				f := fieldSets[(g+r)%len(fieldSets)]
				uids, err := s.UIDs(ctx, rcpt.Mailbox)
				if err != nil {
					errs <- err
					return
				}
				got, err := s.SortInfo(ctx, rcpt.Mailbox, uids, f)
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				j := 0
				for k := range got {
					for j < len(uids) && uids[j] < got[k].UID {
						if !doomed[uids[j]] {
							err = fmt.Errorf("fields %+v: UID %d missing", f, uids[j])
						}
						j++
					}
					if j == len(uids) || uids[j] != got[k].UID {
						err = fmt.Errorf("fields %+v: UID %d answered, not asked for or out of order", f, got[k].UID)
						break
					}
					j++
					// A message just appended may not be in index yet.
					if i, ok := index[got[k].UID]; ok {
						if e := checkWidenInfo(&got[k], i, f); e != nil {
							err = e
						}
					}
				}
				for ; err == nil && j < len(uids); j++ {
					if !doomed[uids[j]] {
						err = fmt.Errorf("fields %+v: UID %d missing at the end", f, uids[j])
					}
				}
				mu.Unlock()
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	// A few UIDs far apart are read as a list, not as the range they
	// span.
	uids, err := s.UIDs(ctx, rcpt.Mailbox)
	if err != nil {
		t.Fatalf("UIDs() = %v", err)
	}
	s.sorts.drop(rcpt.Mailbox)
	ends := []UID{uids[0], uids[len(uids)-1]}
	got, err := s.SortInfo(ctx, rcpt.Mailbox, ends, SortFields{Subject: true})
	if err != nil || len(got) != 2 || got[0].UID != ends[0] || got[1].UID != ends[1] {
		t.Fatalf("SortInfo(%v) = %+v, %v", ends, got, err)
	}
	for i := range got {
		if err := checkWidenInfo(&got[i], index[got[i].UID], SortFields{Subject: true}); err != nil {
			t.Error(err)
		}
	}
}

// With the threading fields, SortInfo reads the date, msg-ids and
// subject as one tab-joined string per row (threadSQL): each field reads
// as it does on its own, a subject with tabs in it and empty fields
// included, whichever of the date and subject are asked with it.
func TestSortInfoThreadingParts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openTestStore(t, Options{})
	rcpt := addUser(t, s, "alice@localhost")
	msgs := []string{
		"Subject: =?utf-8?q?a=09b=09_c?=\r\nDate: Mon, 3 Jan 2011 12:00:00 +0200\r\nMessage-ID: <one@x>\r\n" +
			"In-Reply-To: <zero@x>\r\nReferences: <root@x> <zero@x>\r\n\r\nbody\r\n",
		"Subject: \r\n\r\nbody\r\n",
		"Message-ID: <three@x>\r\nIn-Reply-To: <a@x> <b@x>\r\n\r\nbody\r\n",
	}
	var uids []UID
	for _, m := range msgs {
		res, err := s.Append(ctx, rcpt.Mailbox, []byte(m), nil, time.Time{}, 0)
		if err != nil {
			t.Fatalf("Append() = %v", err)
		}
		uids = append(uids, res.UID)
	}
	read := func(f SortFields) []SortInfo {
		t.Helper()
		s.sorts.drop(rcpt.Mailbox)
		got, err := s.SortInfo(ctx, rcpt.Mailbox, uids, f)
		if err != nil || len(got) != len(uids) {
			t.Fatalf("SortInfo(%+v) = %d messages, %v; want %d", f, len(got), err, len(uids))
		}
		return got
	}
	alone := read(SortFields{Sent: true, Subject: true})
	if alone[0].Subject != "a\tb\t c" {
		t.Fatalf("subject read alone = %q, want the tabs kept", alone[0].Subject)
	}
	want := [][3]any{
		{"one@x", []string{"zero@x"}, []string{"root@x", "zero@x"}},
		{"", []string(nil), []string(nil)},
		{"three@x", []string{"a@x", "b@x"}, []string(nil)},
	}
	for _, f := range []SortFields{
		{Threading: true}, {Sent: true, Threading: true}, {Subject: true, Threading: true}, {Sent: true, Subject: true, Threading: true},
	} {
		for i, m := range read(f) {
			w := alone[i]
			if !f.Sent {
				w.Sent = time.Time{}
			}
			if !f.Subject {
				w.Subject = ""
			}
			if m.UID != w.UID || !m.Sent.Equal(w.Sent) || m.Subject != w.Subject || m.MessageID != want[i][0] ||
				!slices.Equal(m.InReplyTo, want[i][1].([]string)) || !slices.Equal(m.References, want[i][2].([]string)) {
				t.Errorf("SortInfo(%+v)[%d] = %+v; want date %v, subject %q, ids %q", f, i, m, w.Sent, w.Subject, want[i])
			}
		}
	}
}
