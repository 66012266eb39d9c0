package mailstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"pushmail/notify"
)

// The full-text index is written behind the deliveries, a few hundred
// bodies at a time, not in each delivery's transaction: FTS5 writes a
// segment per transaction that adds rows, and merges the segments again
// later, so a segment of eight bodies (a group commit's) cost the writer
// several times what the same rows cost in one of 256. This is how
// Dovecot's indexer works too.
//
// What keeps SEARCH exact is the mark, the meta row bodyTextMarkKey:
// every body whose id is at or below it has its index row (or is gone),
// and no body above it has one. Body ids only grow (nextIDSQL), so a
// search takes as candidates the bodies the index selects plus every body
// above the mark (bodyTextMatchSQL), read in the same statement, and the
// scanning check confirms each candidate as before. The mark and the rows
// it covers are written in one transaction, so a crash loses both or
// neither; after a restart, or on another node of a PostgreSQL store, the
// bodies above the mark are indexed from their stored text.
//
// The writer indexes (indexBodyTextTx) in the transaction of a batch when
// the bodies waiting reach fullTextBatch, and in a transaction of its own
// once no write has come for fullTextDelay. The texts of the bodies it
// committed wait in memory (Store.fullText), at most fullTextMaxPending
// of them; any it has not (dropped, a restart, another node's) are
// derived again from the stored body.

// bodyTextMarkKey is the meta row of the index's mark.
const bodyTextMarkKey = "body_text_indexed"

// fullTextBatch is the number of bodies waiting for the index at which the
// writer indexes them in the batch's transaction. A search scans at most
// about this many bodies beyond what the index selects.
const fullTextBatch = 256

// fullTextDelay is how long the writer waits without writes before it
// indexes the bodies still waiting, in a transaction of their own.
const fullTextDelay = time.Second

// fullTextMaxPending bounds the texts kept in memory for the index: past
// it (the index cannot be written, say the disk is full), they are
// dropped and derived again from the stored bodies when the index is
// written.
const fullTextMaxPending = 8 * fullTextBatch

// fullTextState is the writer's part of the index. Only the writer
// goroutine touches it.
type fullTextState struct {
	// pending holds the committed bodies' texts not yet indexed, by id.
	pending map[int64]bodyText
	// behind is set when bodies above the mark may lack a text in
	// pending: at open, and after pending was dropped.
	behind bool
	// now is set by flushFullText's write: index in this batch.
	now bool
}

// initFullTextMark creates the mark of a store written before it, when
// every body was indexed in its own transaction: at the highest body id.
// It notes whether bodies above the mark wait to be indexed (a restart
// after a crash, another node's bodies).
func (s *Store) initFullTextMark(ctx context.Context) error {
	s.fullText.pending = make(map[int64]bodyText)
	if _, err := s.wdb.ExecContext(ctx, "INSERT OR IGNORE INTO meta(key, value) SELECT '"+bodyTextMarkKey+"', COALESCE(max(id), 0) FROM bodies"); err != nil {
		return fmt.Errorf("full-text index mark: %w", err)
	}
	var behind bool
	if err := s.wdb.QueryRowContext(ctx, "SELECT EXISTS (SELECT 1 FROM bodies WHERE id > (SELECT value FROM meta WHERE key = '"+bodyTextMarkKey+"'))").Scan(&behind); err != nil {
		return fmt.Errorf("full-text index mark: %w", err)
	}
	s.fullText.behind = behind
	return nil
}

// fullTextWaiting reports whether bodies wait for the index.
func (s *Store) fullTextWaiting() bool {
	return len(s.fullText.pending) > 0 || s.fullText.behind
}

// fullTextDue reports whether the batch whose transaction collected rows
// should write the index.
func (s *Store) fullTextDue(rows []bodyTextRow) bool {
	return s.fullText.now || len(s.fullText.pending)+len(rows) >= fullTextBatch
}

// indexBodyTextTx indexes, in tx, the bodies above the mark (at most
// maxIndexRun of them) and raises the mark past them. rows are the texts
// of the bodies tx itself stored. It returns the new mark, for
// fullTextCommitted.
func (s *Store) indexBodyTextTx(ctx context.Context, tx *sql.Tx, rows []bodyTextRow) (int64, error) {
	var mark int64
	if err := tx.QueryRowContext(ctx, "SELECT value FROM meta WHERE key = '"+bodyTextMarkKey+"'").Scan(&mark); err != nil {
		return 0, fmt.Errorf("read the mark: %w", err)
	}
	texts := make(map[int64]bodyText, len(rows))
	for _, r := range rows {
		texts[r.id] = r.text
	}
	ids, err := bodyIDsAbove(ctx, tx, mark, maxIndexRun)
	if err != nil {
		return 0, err
	}
	if len(ids) == 0 {
		return mark, nil
	}
	index := make([]bodyTextRow, 0, len(ids))
	for _, id := range ids {
		t, ok := texts[id]
		if !ok {
			t, ok = s.fullText.pending[id]
		}
		if !ok {
			if t, err = s.storedBodyText(ctx, tx, id); err != nil {
				return 0, err
			}
		}
		index = append(index, bodyTextRow{id: id, text: t})
	}
	top := ids[len(ids)-1]
	// The mark first: the index's INSERT must be the transaction's last
	// statement (writeBodyText).
	if _, err := tx.ExecContext(ctx, "UPDATE meta SET value = ? WHERE key = '"+bodyTextMarkKey+"'", top); err != nil {
		return 0, fmt.Errorf("raise the mark: %w", err)
	}
	if err := writeBodyText(ctx, tx, index, s.postgres); err != nil {
		return 0, err
	}
	return top, nil
}

// maxIndexRun bounds the bodies one transaction indexes, after a restart
// with many waiting.
const maxIndexRun = 4 * fullTextBatch

// bodyIDsAbove returns the ids of the stored bodies above mark, ascending,
// at most limit of them.
func bodyIDsAbove(ctx context.Context, tx *sql.Tx, mark int64, limit int) ([]int64, error) {
	r, err := tx.QueryContext(ctx, "SELECT id FROM bodies WHERE id > ? ORDER BY id LIMIT ?", mark, limit)
	if err != nil {
		return nil, fmt.Errorf("bodies to index: %w", err)
	}
	defer r.Close()
	var ids []int64
	for r.Next() {
		var id int64
		if err := r.Scan(&id); err != nil {
			return nil, fmt.Errorf("bodies to index: %w", err)
		}
		ids = append(ids, id)
	}
	if err := r.Err(); err != nil {
		return nil, fmt.Errorf("bodies to index: %w", err)
	}
	return ids, nil
}

// storedBodyText derives body id's index text from its stored bytes and
// parse result, as newBody did.
func (s *Store) storedBodyText(ctx context.Context, tx *sql.Tx, id int64) (bodyText, error) {
	var raw, js []byte
	if err := tx.QueryRowContext(ctx, "SELECT raw, json_extract(parsed, '$.root') FROM bodies WHERE id = ?", id).Scan(&raw, &js); err != nil {
		return bodyText{}, fmt.Errorf("read body %d to index: %w", id, err)
	}
	var root *searchPart
	if p := new(searchPart); json.Unmarshal(js, p) == nil {
		root = p
	}
	t := newBodyText(raw, root)
	if s.indexPacksText() {
		t = t.packed()
	}
	return t, nil
}

// fullTextCommitted updates the writer's part of the index after a
// commit: rows are the committed batch's texts; mark is the new mark if
// the batch wrote the index, else 0.
func (s *Store) fullTextCommitted(rows []bodyTextRow, mark int64) {
	ft := &s.fullText
	if mark != 0 {
		ft.now = false
		for id := range ft.pending {
			if id <= mark {
				delete(ft.pending, id)
			}
		}
		if len(ft.pending) == 0 {
			// Bodies above the mark with no text here (a run cut
			// at maxIndexRun, another node's) are found at the next
			// run, which a write or the delay brings.
			ft.behind = false
		}
	}
	for _, r := range rows {
		if r.id > mark {
			ft.pending[r.id] = r.text
		}
	}
	if len(ft.pending) > fullTextMaxPending {
		clear(ft.pending)
		ft.behind = true
	}
}

// indexIdle is the writer's transaction of its own for the index, once no
// write has come for fullTextDelay. A failure is logged and leaves the
// bodies waiting: SEARCH stays exact without their index rows.
func (s *Store) indexIdle() {
	ctx := context.Background()
	mark, err := s.indexIdleTx(ctx)
	if err != nil {
		s.log.Warn("mailstore: full-text index not written; the bodies wait for the next run", "err", err)
		return
	}
	s.fullTextCommitted(nil, mark)
	if mark != 0 && !s.fullText.behind {
		// A run cut short leaves bodies above the mark: look again.
		var more bool
		if err := s.wdb.QueryRowContext(ctx, "SELECT EXISTS (SELECT 1 FROM bodies WHERE id > ?)", mark).Scan(&more); err == nil && more {
			s.fullText.behind = true
		}
	}
}

func (s *Store) indexIdleTx(ctx context.Context) (int64, error) {
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	if s.postgres {
		if _, err := tx.ExecContext(ctx, writeLockSQL); err != nil {
			rollback(tx)
			return 0, fmt.Errorf("take the write lock: %w", err)
		}
	}
	mark, err := s.indexBodyTextTx(ctx, tx, nil)
	if err != nil {
		rollback(tx)
		return 0, err
	}
	if err := tx.Commit(); err != nil {
		return 0, err
	}
	if mark == 0 {
		mark = -1 // nothing stored at all: nothing to keep either
	}
	return mark, nil
}

// flushFullText indexes every body stored so far (at most maxIndexRun of
// them), in a write of its own: for tests, which look at the index rows.
func (s *Store) flushFullText(ctx context.Context) error {
	return s.write(ctx, 0, func(tx *wtx) ([]notify.Event, error) {
		if tx.fullTextNow == nil {
			return nil, errors.New("flushFullText outside the writer")
		}
		*tx.fullTextNow = true
		return nil, nil
	})
}
