package mailstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"pushmail/message"
	"pushmail/notify"
)

// AppendMessage is one message of AppendBatch: its bytes, flags and
// internal date (the zero time means now).
type AppendMessage struct {
	Raw   []byte
	Flags []string
	Date  time.Time
}

// AppendBatchResult says where AppendBatch put its messages (RFC 4315
// APPENDUID with a UID set, as RFC 3502 MULTIAPPEND needs): UIDs in the
// order of the messages, ascending.
type AppendBatchResult struct {
	UIDValidity uint32
	UIDs        []UID
}

// errEmptyBatch is AppendBatch's refusal of no messages: a caller bug.
var errEmptyBatch = errors.New("no messages")

// AppendBatch stores msgs in one mailbox in one transaction: all of them
// or none (RFC 3502 §3: "If the server is unable to append all of the
// messages, it MUST NOT append any"). Each message is checked (size,
// flags) and parsed before the write, so a bad one refuses the batch
// without touching the store; a failure inside the transaction rolls
// back the messages before it. Each message takes its own UID and modseq,
// in order, and gets its own Appended event carrying origin, published
// after the commit like Append's. msgs must not be empty.
func (s *Store) AppendBatch(ctx context.Context, mailbox MailboxID, msgs []AppendMessage, origin uint64) (AppendBatchResult, error) {
	if len(msgs) == 0 {
		return AppendBatchResult{}, fmt.Errorf("append batch: %w", errEmptyBatch)
	}
	type prepared struct {
		b    body
		fs   flagSet
		date time.Time
		size int
	}
	ready := make([]prepared, len(msgs))
	total := 0
	now := time.Now()
	for i, m := range msgs {
		if err := s.checkSize(len(m.Raw)); err != nil {
			return AppendBatchResult{}, fmt.Errorf("append batch: message %d: %w", i+1, err)
		}
		fs, err := parseFlags(m.Flags)
		if err != nil {
			return AppendBatchResult{}, fmt.Errorf("append batch: message %d: %w", i+1, err)
		}
		b, err := newBody(m.Raw, message.Parse(m.Raw), s.indexPacksText())
		if err != nil {
			return AppendBatchResult{}, fmt.Errorf("append batch: message %d: %w", i+1, err)
		}
		date := m.Date
		if date.IsZero() {
			date = now
		}
		ready[i] = prepared{b: b, fs: fs, date: date, size: len(m.Raw)}
		total += len(m.Raw)
	}
	var res AppendBatchResult
	err := s.writeMail(ctx, total, func(tx *wtx) ([]notify.Event, error) {
		// The function may run twice (a batch retried with savepoints):
		// it starts from scratch each time.
		res = AppendBatchResult{UIDs: make([]UID, 0, len(ready))}
		if err := tx.QueryRow("SELECT uidvalidity FROM mailboxes WHERE id = ?", mailbox).Scan(&res.UIDValidity); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return nil, ErrNoSuchMailbox
			}
			return nil, err
		}
		events := make([]notify.Event, 0, len(ready))
		for _, p := range ready {
			bodyID, err := insertBodyTx(tx, p.b)
			if err != nil {
				return nil, err
			}
			uid, modseq, err := insertMessageTx(tx, mailbox, bodyID, p.fs, p.date, p.size)
			if err != nil {
				return nil, err
			}
			res.UIDs = append(res.UIDs, uid)
			ev := notify.Event{Mailbox: int64(mailbox), Kind: notify.Appended, UIDs: []uint32{uint32(uid)}, ModSeq: modseq, Origin: origin}
			if err := fillCount(tx, &ev); err != nil {
				return nil, err
			}
			events = append(events, ev)
		}
		// RFC 9208 §4.3 and RFC 3502: the user's quota holds for the
		// batch as a whole; over it, none of the messages is stored.
		if err := checkMailboxQuotaTx(tx, mailbox); err != nil {
			return nil, err
		}
		return events, nil
	})
	if err != nil {
		return AppendBatchResult{}, fmt.Errorf("append batch: %w", err)
	}
	return res, nil
}
