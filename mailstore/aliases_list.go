package mailstore

import (
	"context"
	"fmt"
)

// Alias is an address whose mail goes to a user (see AddAlias).
type Alias struct {
	Address string // normalised, as NormalizeAddress returns it
	User    string // the target user's address
}

// Aliases lists all aliases, ordered by alias address.
func (s *Store) Aliases(ctx context.Context) ([]Alias, error) {
	rows, err := s.query(ctx, "SELECT a.address, u.address FROM aliases a JOIN users u ON u.id = a.user_id ORDER BY a.address")
	if err != nil {
		return nil, fmt.Errorf("list aliases: %w", err)
	}
	defer rows.Close()
	var list []Alias
	for rows.Next() {
		var a Alias
		if err := rows.Scan(&a.Address, &a.User); err != nil {
			return nil, fmt.Errorf("list aliases: %w", err)
		}
		list = append(list, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list aliases: %w", err)
	}
	return list, nil
}
