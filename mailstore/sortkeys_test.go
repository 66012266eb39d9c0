package mailstore

import (
	"context"
	"strings"
	"testing"
)

// undoSortKeys turns a file written at sortKeysVersion back into one of
// the version before: the sort keys go.
const undoSortKeys = `
DROP TABLE sortkeys;
`

// A body's sort keys are written with it and go with it: one row per
// body, however many messages share it, none once its last message is
// expunged.
func TestSortKeysFollowBodies(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openTestStore(t, Options{})
	r := addUser(t, s, "u@localhost")
	other, err := s.CreateMailbox(ctx, r.User, "Other", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Deliver(ctx, testMessage(1), []Recipient{r}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Copy(ctx, r.Mailbox, AllUIDs(), other.ID, 0); err != nil {
		t.Fatal(err)
	}
	rows := func() (keys, bodies int) {
		t.Helper()
		if err := s.rdb.QueryRow("SELECT (SELECT COUNT(*) FROM sortkeys), (SELECT COUNT(*) FROM bodies)").Scan(&keys, &bodies); err != nil {
			t.Fatal(err)
		}
		return keys, bodies
	}
	if keys, bodies := rows(); keys != 1 || bodies != 1 {
		t.Fatalf("after a delivery and a copy: %d sort key rows, %d bodies; want 1 and 1", keys, bodies)
	}
	for _, mb := range []MailboxID{r.Mailbox, other.ID} {
		if _, err := s.StoreFlags(ctx, mb, AllUIDs(), FlagsAdd, []string{FlagDeleted}, 0); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Expunge(ctx, mb, AllUIDs(), 0); err != nil {
			t.Fatal(err)
		}
	}
	if keys, bodies := rows(); keys != 0 || bodies != 0 {
		t.Fatalf("after expunging both copies: %d sort key rows, %d bodies; want none", keys, bodies)
	}
}

// TestSchemaVersionConstants: the named schema versions are where their
// migrations are in the list (a migration inserted before one moves it).
func TestSchemaVersionConstants(t *testing.T) {
	for _, c := range []struct {
		name    string
		version int
		creates string
	}{
		{"sortKeysVersion", sortKeysVersion, "CREATE TABLE sortkeys"},
		{"versionBodyText", versionBodyText, "body_crlf_size"},
		{"versionSaveDate", versionSaveDate, "ADD COLUMN save_date"},
	} {
		if c.version < 1 || c.version > len(migrations) || !strings.Contains(migrations[c.version-1], c.creates) {
			t.Errorf("%s = %d; migration %d does not %s", c.name, c.version, c.version, c.creates)
		}
	}
}
