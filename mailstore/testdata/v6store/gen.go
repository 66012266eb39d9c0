//go:build ignore

// gen writes v6.db, a store as pushmail's schema version 6 writes it,
// and v6.json, every message it holds, for TestMigrationChangeLog. It
// must be run with the code of a commit whose schema is version 6
// (written at 92e4aef):
//
//	git worktree add /tmp/v6 92e4aef && cp gen.go /tmp/v6/mailstore/testdata/v6store/
//	cd /tmp/v6 && go run ./mailstore/testdata/v6store/gen.go OUTDIR
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"pushmail/mailstore"
)

// Snapshot is what v6.json holds: per user, per mailbox, every message.
type Snapshot struct {
	Users []SnapUser `json:"users"`
}

type SnapUser struct {
	Address   string        `json:"address"`
	Mailboxes []SnapMailbox `json:"mailboxes"`
}

type SnapMailbox struct {
	Name          string        `json:"name"`
	UIDValidity   uint32        `json:"uidvalidity"`
	UIDNext       uint32        `json:"uidnext"`
	HighestModSeq uint64        `json:"highestmodseq"`
	Messages      []SnapMessage `json:"messages"`
}

type SnapMessage struct {
	UID    uint32   `json:"uid"`
	Flags  []string `json:"flags"`
	ModSeq uint64   `json:"modseq"`
	Size   int64    `json:"size"`
	Date   int64    `json:"date"` // unix nanoseconds
	SHA256 string   `json:"sha256"`
}

func main() {
	if len(os.Args) != 2 {
		log.Fatal("usage: gen OUTDIR")
	}
	dir := os.Args[1]
	ctx := context.Background()
	path := filepath.Join(dir, "v6.db")
	s, err := mailstore.Open(ctx, path, mailstore.Options{Domains: []string{"old.test"}, PasswordCost: 4})
	must(err)
	var rcpts []mailstore.Recipient
	for _, a := range []string{"alice@old.test", "bob@old.test"} {
		_, err := s.AddUser(ctx, a, "secret")
		must(err)
		r, err := s.Resolve(ctx, a)
		must(err)
		rcpts = append(rcpts, r)
	}
	alice, bob := rcpts[0], rcpts[1]
	msg := func(i int) []byte {
		return fmt.Appendf(nil, "From: s%d@example.org\r\nTo: alice@old.test\r\nSubject: old %d\r\nMessage-ID: <%d@old.test>\r\n\r\nBody %d.\r\n", i%7, i, i, i)
	}
	// 60 deliveries, some to both users (shared bodies).
	for i := range 60 {
		to := []mailstore.Recipient{alice}
		if i%3 == 0 {
			to = append(to, bob)
		}
		_, err := s.Deliver(ctx, msg(i), to)
		must(err)
	}
	work, err := s.CreateMailbox(ctx, alice.User, "Work/2024", "")
	must(err)
	for i := range 20 {
		_, err := s.Append(ctx, work.ID, msg(100+i), []string{mailstore.FlagSeen, "$Label1"}, time.Unix(1_700_000_000+int64(i), 0), 0)
		must(err)
	}
	all := mailstore.AllUIDs()
	_, err = s.StoreFlags(ctx, alice.Mailbox, mailstore.UIDSet{{Start: 1, Stop: 30}}, mailstore.FlagsAdd, []string{mailstore.FlagSeen}, 0)
	must(err)
	_, err = s.StoreFlags(ctx, alice.Mailbox, mailstore.UIDSet{{Start: 5, Stop: 9}}, mailstore.FlagsAdd, []string{mailstore.FlagFlagged, "work", "$Junk"}, 0)
	must(err)
	_, err = s.StoreFlags(ctx, alice.Mailbox, mailstore.UIDSet{{Start: 10, Stop: 14}, {Start: 40, Stop: 41}}, mailstore.FlagsAdd, []string{mailstore.FlagDeleted}, 0)
	must(err)
	_, err = s.Expunge(ctx, alice.Mailbox, mailstore.UIDSet{{Start: 1, Stop: 12}}, 0)
	must(err)
	trash, err := s.Mailbox(ctx, alice.User, "Trash")
	must(err)
	_, err = s.Copy(ctx, alice.Mailbox, mailstore.UIDSet{{Start: 20, Stop: 25}}, trash.ID, 0)
	must(err)
	_, err = s.Move(ctx, alice.Mailbox, mailstore.UIDSet{{Start: 50, Stop: 55}}, work.ID, 0)
	must(err)
	_, err = s.StoreFlags(ctx, work.ID, all, mailstore.FlagsRemove, []string{"$Label1"}, 0)
	must(err)
	must(s.RenameMailbox(ctx, alice.User, "Work", "Projects"))
	_, err = s.StoreFlags(ctx, bob.Mailbox, mailstore.UIDSet{{Start: 2, Stop: 4}}, mailstore.FlagsSet, []string{mailstore.FlagAnswered, mailstore.FlagDraft}, 0)
	must(err)

	var snap Snapshot
	for _, r := range rcpts {
		u := SnapUser{Address: r.Address}
		sts, err := s.MailboxStatuses(ctx, r.User)
		must(err)
		for _, st := range sts {
			mb := SnapMailbox{Name: st.Name, UIDValidity: st.UIDValidity, UIDNext: uint32(st.UIDNext), HighestModSeq: st.HighestModSeq}
			err := s.Messages(ctx, st.ID, all, mailstore.FetchOptions{Body: true}, func(m *mailstore.Message) error {
				sum := sha256.Sum256(m.Raw)
				mb.Messages = append(mb.Messages, SnapMessage{UID: uint32(m.UID), Flags: m.Flags, ModSeq: m.ModSeq,
					Size: m.Size, Date: m.InternalDate.UnixNano(), SHA256: hex.EncodeToString(sum[:])})
				return nil
			})
			must(err)
			u.Mailboxes = append(u.Mailboxes, mb)
		}
		snap.Users = append(snap.Users, u)
	}
	must(s.Close())
	js, err := json.MarshalIndent(snap, "", "\t")
	must(err)
	must(os.WriteFile(filepath.Join(dir, "v6.json"), append(js, '\n'), 0o644))
}

func must(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
