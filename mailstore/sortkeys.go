package mailstore

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"strings"

	"pushmail/message"
)

// sortKeysVersion is the schema version that adds the sortkeys table:
// what SORT and THREAD (RFC 5256) read of a message, one narrow row per
// body, written with the body. Reading the same keys out of the stored
// envelopes (bodies.parsed) touches every body's row, about a second
// for the first SORT of a mailbox of 100,000 messages; the narrow rows
// are a few pages per thousand messages.
const sortKeysVersion = 12

// sortKeyColumns are the sortkeys columns after body_id, in the order
// sortKeyExprs computes them.
const sortKeyColumns = "sent, subject, from_mailbox, to_mailbox, cc_mailbox, display_from, display_to, message_id, in_reply_to, refs"

// sortKeyExprs computes sortKeyColumns from a body row b: the same
// fields SortInfo documents, from the envelope stored at delivery.
// References of an envelope stored before it had the key are NULL here;
// backfillSortKeys fills them from the header.
var sortKeyExprs = strings.Join([]string{
	"b.parsed->>'$.env.date'",
	"b.parsed->>'$.env.subject'",
	firstMailboxSQL("from"),
	firstMailboxSQL("to"),
	firstMailboxSQL("cc"),
	firstDisplaySQL("from"),
	firstDisplaySQL("to"),
	"b.parsed->>'$.env.message_id'",
	idListSQL("in_reply_to"),
	idListSQL("references"),
}, ", ")

// sortKeyExprsPostgres is sortKeyExprs on PostgreSQL, where the
// envelope is read as jsonb, parsed once per body (sortKeysFromPostgres
// names it p.j): #>> gives a string's text, and a field that is not an
// array (missing, or JSON null) has no elements.
var sortKeyExprsPostgres = strings.Join([]string{
	"p.j #>> '{env,date}'",
	"p.j #>> '{env,subject}'",
	"(SELECT a->>'mailbox' FROM " + pgArrayElements("from") + " a WHERE a->>'mailbox' IS NOT NULL LIMIT 1)",
	"(SELECT a->>'mailbox' FROM " + pgArrayElements("to") + " a WHERE a->>'mailbox' IS NOT NULL LIMIT 1)",
	"(SELECT a->>'mailbox' FROM " + pgArrayElements("cc") + " a WHERE a->>'mailbox' IS NOT NULL LIMIT 1)",
	pgFirstDisplaySQL("from"),
	pgFirstDisplaySQL("to"),
	"p.j #>> '{env,message_id}'",
	"(SELECT string_agg(i #>> '{}', ' ') FROM " + pgArrayElements("in_reply_to") + " i)",
	"(SELECT string_agg(i #>> '{}', ' ') FROM " + pgArrayElements("references") + " i)",
}, ", ")

// sortKeysFromPostgres is the FROM clause of sortKeyExprsPostgres: the
// body b and its envelope parsed once as jsonb, p.j.
const sortKeysFromPostgres = " FROM bodies b, LATERAL (SELECT b.parsed::jsonb AS j) p"

// pgArrayElements is PostgreSQL SQL for the elements of the envelope's
// list field (under $.env), none when it is not an array.
func pgArrayElements(field string) string {
	e := "(p.j #> '{env," + field + "}')"
	return "jsonb_array_elements(CASE WHEN jsonb_typeof(" + e + ") = 'array' THEN " + e + " ELSE '[]'::jsonb END)"
}

// pgFirstDisplaySQL is firstDisplaySQL on PostgreSQL.
func pgFirstDisplaySQL(field string) string {
	return "(SELECT coalesce(nullif(a->>'name', ''), a->>'mailbox' || " +
		"CASE WHEN coalesce(a->>'host', '') = '' THEN '' ELSE '@' || (a->>'host') END) " +
		"FROM " + pgArrayElements(field) + " a WHERE a->>'mailbox' IS NOT NULL LIMIT 1)"
}

// insertSortKeysTx writes the sort keys of a body just inserted, in the
// same transaction: a message is never visible without them.
func insertSortKeysTx(tx *wtx, bodyID int64) error {
	if _, err := tx.Exec("INSERT INTO sortkeys(body_id, "+sortKeyColumns+") SELECT b.id, "+tx.pick(sortKeyExprs, sortKeyExprsPostgres)+
		tx.pick(" FROM bodies b", sortKeysFromPostgres)+" WHERE b.id = ?", bodyID); err != nil {
		return fmt.Errorf("store sort keys: %w", err)
	}
	return nil
}

// backfillSortKeys writes the sort keys of every body of a file written
// before sortKeysVersion, in the migration's transaction. Envelopes
// stored before Envelope.References existed have no "references" key;
// theirs come from the stored header (message.HeaderReferences), as
// SortInfo read them before.
func backfillSortKeys(ctx context.Context, tx *sql.Tx, log *slog.Logger) error {
	res, err := tx.ExecContext(ctx, "INSERT INTO sortkeys(body_id, "+sortKeyColumns+") SELECT b.id, "+sortKeyExprs+" FROM bodies b")
	if err != nil {
		return fmt.Errorf("sort keys: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("sort keys: %w", err)
	}
	rows, err := tx.QueryContext(ctx, "SELECT id, header FROM bodies WHERE json_type(parsed, '$.env.references') IS NULL")
	if err != nil {
		return fmt.Errorf("sort keys: %w", err)
	}
	type refs struct {
		id   int64
		list string
	}
	var old []refs
	for rows.Next() {
		var id int64
		var header []byte
		if err := rows.Scan(&id, &header); err != nil {
			rows.Close()
			return fmt.Errorf("sort keys: %w", err)
		}
		if ids := message.HeaderReferences(header); len(ids) > 0 {
			old = append(old, refs{id, strings.Join(ids, " ")})
		}
	}
	if err := rows.Close(); err != nil {
		return fmt.Errorf("sort keys: %w", err)
	}
	for _, r := range old {
		if _, err := tx.ExecContext(ctx, "UPDATE sortkeys SET refs = ? WHERE body_id = ?", r.list, r.id); err != nil {
			return fmt.Errorf("sort keys: %w", err)
		}
	}
	log.Info("sort keys written for the stored messages", "bodies", n, "references_from_header", len(old))
	return nil
}
