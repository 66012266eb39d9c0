package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImportGraph keeps the packages honest (STYLE.md §2.1): imports go
// one way, cmd/pushmail -> smtpd, imapd -> mailstore -> notify, and
// everyone -> message; only mailstore speaks SQL; mailstore and notify
// know nothing of the mail protocols; message, notify and the internal
// packages import nothing of ours.
func TestImportGraph(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}}|{{join .Imports \" \"}}|{{join .Deps \" \"}}", "pushmail/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	type pkg struct{ imports, deps []string }
	pkgs := map[string]pkg{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(line, "|")
		pkgs[f[0]] = pkg{strings.Fields(f[1]), strings.Fields(f[2])}
	}
	ours := func(p string) bool { return strings.HasPrefix(p, "pushmail/") }
	rules := []struct {
		pkg          string
		mayImportOur []string // our packages it may import directly
		mustNotDep   []string // prefixes forbidden anywhere in its dependencies
		sql          bool     // may import database/sql and the driver directly
	}{
		{"pushmail/notify", nil, []string{"github.com/emersion/"}, false},
		// message parses bytes into values: nothing of ours (not even
		// through a dependency), no SQL, no protocol library.
		{"pushmail/message", nil, []string{"pushmail/", "github.com/emersion/go-imap", "github.com/emersion/go-smtp"}, false},
		{"pushmail/internal/authlimit", nil, []string{"github.com/emersion/"}, false},
		{"pushmail/internal/tlspolicy", nil, []string{"github.com/emersion/"}, false},
		{"pushmail/mailstore", []string{"pushmail/message", "pushmail/notify"}, []string{"github.com/emersion/go-imap", "github.com/emersion/go-smtp"}, true},
		{"pushmail/smtpd", []string{"pushmail/mailstore", "pushmail/message", "pushmail/notify", "pushmail/internal/authlimit", "pushmail/internal/tlspolicy"}, []string{"pushmail/imapd", "github.com/emersion/go-imap"}, false},
		{"pushmail/imapd", []string{"pushmail/mailstore", "pushmail/message", "pushmail/notify", "pushmail/internal/authlimit", "pushmail/internal/tlspolicy"}, []string{"pushmail/smtpd", "github.com/emersion/go-smtp"}, false},
	}
	for _, r := range rules {
		p, ok := pkgs[r.pkg]
		if !ok {
			t.Errorf("package %s not found", r.pkg)
			continue
		}
		for _, imp := range p.imports {
			if ours(imp) && !contains(r.mayImportOur, imp) {
				t.Errorf("%s imports %s", r.pkg, imp)
			}
			if !r.sql && (imp == "database/sql" || strings.HasPrefix(imp, "github.com/mattn/go-sqlite3")) {
				t.Errorf("%s imports %s: only mailstore speaks SQL", r.pkg, imp)
			}
		}
		for _, dep := range p.deps {
			for _, bad := range r.mustNotDep {
				if strings.HasPrefix(dep, bad) {
					t.Errorf("%s depends on %s", r.pkg, dep)
				}
			}
		}
	}
	for name, p := range pkgs {
		if name == "pushmail/mailstore" {
			continue
		}
		for _, imp := range p.imports {
			if imp == "database/sql" {
				t.Errorf("%s imports database/sql: only mailstore speaks SQL", name)
			}
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
