package mailstore

import (
	"net/url"
	"strings"
)

// IsPostgresURL reports whether a store location names a PostgreSQL
// database (postgres:// or postgresql://, as libpq and pgx accept them)
// rather than an SQLite file. Open takes either.
func IsPostgresURL(location string) bool {
	l := strings.ToLower(location)
	return strings.HasPrefix(l, "postgres://") || strings.HasPrefix(l, "postgresql://")
}

// RedactURL returns a PostgreSQL URL with its password replaced by "xxxxx",
// for logs and error messages; anything else is returned as it is.
func RedactURL(location string) string {
	if !IsPostgresURL(location) {
		return location
	}
	u, err := url.Parse(location)
	if err != nil {
		return "postgres://(unparsable URL)"
	}
	return u.Redacted()
}
