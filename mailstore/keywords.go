package mailstore

import (
	"context"
	"fmt"
	"sort"
	"strings"
)

// Keywords returns the keywords (RFC 9051 §2.3.2) that at least one
// message of the mailbox carries, sorted, each once whatever its case:
// the flags an IMAP FLAGS response lists beside the system flags
// (RFC 9051 §7.3.5). Of spellings that differ only in case, the first in
// byte order is kept. An unknown mailbox has none.
//
// One query over the partial index of the messages that carry keywords
// (schema 8), reading no bodies;
// SQL hands back each distinct keyword column once, so Go splits only as
// many strings as there are distinct combinations of keywords.
func (s *Store) Keywords(ctx context.Context, mailbox MailboxID) ([]string, error) {
	rows, err := s.query(ctx, "SELECT DISTINCT keywords FROM messages WHERE mailbox_id = ? AND keywords != ''", mailbox)
	if err != nil {
		return nil, fmt.Errorf("keywords: %w", err)
	}
	defer rows.Close()
	var all []string
	for rows.Next() {
		var kw string
		if err := rows.Scan(&kw); err != nil {
			return nil, fmt.Errorf("keywords: %w", err)
		}
		all = append(all, strings.Fields(kw)...)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("keywords: %w", err)
	}
	sort.Strings(all)
	seen := make(map[string]bool, len(all))
	out := all[:0]
	for _, k := range all {
		// RFC 9051 §2.3.2: flags are case-insensitive.
		if l := strings.ToLower(k); !seen[l] {
			seen[l] = true
			out = append(out, k)
		}
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}
