package mailstore

import "testing"

func TestIsPostgresURL(t *testing.T) {
	for loc, want := range map[string]bool{
		"postgres://u:p@127.0.0.1:5432/mail": true,
		"PostgreSQL://h/db":                  true,
		"/var/lib/pushmail/mail.db":          false,
		"postgres.db":                        false,
		"sqlite:mail.db":                     false,
	} {
		if got := IsPostgresURL(loc); got != want {
			t.Errorf("IsPostgresURL(%q) = %v, want %v", loc, got, want)
		}
	}
	if got := RedactURL("postgres://alice:secret@h:5432/db"); got != "postgres://alice:xxxxx@h:5432/db" {
		t.Errorf("RedactURL = %q", got)
	}
	if got := RedactURL("/tmp/x.db"); got != "/tmp/x.db" {
		t.Errorf("RedactURL(path) = %q", got)
	}
}
