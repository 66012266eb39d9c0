package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestImportGraph keeps the packages honest (STYLE.md §2.1): imports go
// one way, cmd/pushmail -> smtpd, imapd, pop3d -> mailstore -> notify, and
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
		// pgtest makes test databases; it knows nothing of ours.
		{"pushmail/internal/pgtest", nil, []string{"pushmail/", "github.com/emersion/"}, false},
		{"pushmail/internal/tlspolicy", nil, []string{"github.com/emersion/"}, false},
		{"pushmail/internal/membudget", nil, []string{"github.com/emersion/"}, false},
		{"pushmail/internal/proxylisten", nil, []string{"github.com/emersion/"}, false},
		{"pushmail/internal/netkey", nil, []string{"github.com/emersion/"}, false},
		{"pushmail/internal/acceptloop", nil, []string{"github.com/emersion/"}, false},
		{"pushmail/internal/connslots", nil, []string{"github.com/emersion/"}, false},
		// The readiness loop knows no protocol: HTTP streams will use it too.
		{"pushmail/internal/hibernate", nil, []string{"pushmail/", "github.com/emersion/"}, false},
		// The fan-out pool neither: a Target is anything that delivers.
		{"pushmail/internal/fanout", nil, []string{"pushmail/", "github.com/emersion/"}, false},
		{"pushmail/mailstore", []string{"pushmail/message", "pushmail/notify"}, []string{"github.com/emersion/go-imap", "github.com/emersion/go-smtp"}, true},
		{"pushmail/smtpd", []string{"pushmail/mailstore", "pushmail/message", "pushmail/notify", "pushmail/internal/authlimit", "pushmail/internal/tlspolicy", "pushmail/internal/membudget", "pushmail/internal/netkey"}, []string{"pushmail/imapd", "pushmail/pop3d", "github.com/emersion/go-imap"}, false},
		// The harness measures through sockets and prepares data through
		// mailstore: it needs no protocol package.
		{"pushmail/internal/bench", []string{"pushmail/mailstore"}, []string{"pushmail/smtpd", "pushmail/imapd", "pushmail/cmd/"}, false},
		// imapd's wire layer: bytes to commands and back, nothing of
		// ours, and not go-imap's server (issue 14 replaces it).
		{"pushmail/imapd/wire", nil, []string{"pushmail/", "github.com/emersion/go-imap/v2/imapserver", "github.com/emersion/go-smtp"}, false},
		// pop3d: a protocol front end beside smtpd and imapd, on the
		// same internal packages, never one of its peers.
		{"pushmail/pop3d", []string{"pushmail/mailstore", "pushmail/internal/authlimit", "pushmail/internal/tlspolicy", "pushmail/internal/netkey", "pushmail/internal/acceptloop", "pushmail/internal/connslots"}, []string{"pushmail/smtpd", "pushmail/imapd", "github.com/emersion/go-smtp", "github.com/emersion/go-imap"}, false},
		// The HTTP API: a front end beside imapd and pop3d, on the store,
		// the parser, the notifier and the shared login limiter.
		{"pushmail/jmap", []string{"pushmail/mailstore", "pushmail/message", "pushmail/notify", "pushmail/internal/authlimit", "pushmail/internal/hibernate", "pushmail/internal/fanout", "pushmail/wakeup"}, []string{"pushmail/smtpd", "pushmail/imapd", "pushmail/pop3d", "github.com/emersion/go-smtp", "github.com/emersion/go-imap"}, false},
		// The wake-up engine: a push channel fed by the notifier, on the
		// store; it knows no front end (the HTTP API uses its ids).
		{"pushmail/wakeup", []string{"pushmail/mailstore", "pushmail/notify"}, []string{"pushmail/smtpd", "pushmail/imapd", "pushmail/pop3d", "pushmail/jmap", "github.com/emersion/go-smtp", "github.com/emersion/go-imap"}, false},
		// The web inbox serves a page and its login; the page talks to
		// the HTTP API over HTTP, not through Go.
		{"pushmail/webinbox", []string{"pushmail/mailstore", "pushmail/internal/authlimit"}, []string{"pushmail/smtpd", "pushmail/imapd", "pushmail/pop3d", "pushmail/jmap", "github.com/emersion/go-smtp", "github.com/emersion/go-imap"}, false},
		{"pushmail/imapd", []string{"pushmail/imapd/wire", "pushmail/mailstore", "pushmail/message", "pushmail/notify", "pushmail/internal/authlimit", "pushmail/internal/tlspolicy", "pushmail/internal/membudget", "pushmail/internal/netkey", "pushmail/internal/hibernate", "pushmail/internal/fanout", "pushmail/internal/acceptloop", "pushmail/internal/connslots"}, []string{"pushmail/smtpd", "pushmail/pop3d", "github.com/emersion/go-smtp", "github.com/emersion/go-imap/v2/imapserver"}, false},
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
	// The benchmark harness lives in internal/bench; only cmd/pushmail,
	// which wires its sub-command, may import it.
	for name, p := range pkgs {
		for _, imp := range p.imports {
			if imp == "pushmail/internal/bench" && name != "pushmail/cmd/pushmail" {
				t.Errorf("%s imports %s: only cmd/pushmail wires the bench", name, imp)
			}
		}
	}
	// pgtest is for tests: go list's Imports leaves test files out, so
	// no package may list it.
	for name, p := range pkgs {
		for _, imp := range p.imports {
			if imp == "pushmail/internal/pgtest" {
				t.Errorf("%s imports %s outside its tests", name, imp)
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

// TestBenchHarnessOutside keeps the benchmark harness out of the binary's
// package: cmd/pushmail holds only the bench sub-command's wiring
// (benchcmd.go), and the harness's files and types live in internal/bench.
func TestBenchHarnessOutside(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		if strings.HasPrefix(name, "bench") && name != "benchcmd.go" {
			t.Errorf("%s: bench harness code belongs in internal/bench; cmd/pushmail keeps only benchcmd.go", name)
		}
		f, err := parser.ParseFile(fset, name, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatalf("parse %s: %v", name, err)
		}
		for _, decl := range f.Decls {
			gen, ok := decl.(*ast.GenDecl)
			if !ok || gen.Tok != token.TYPE {
				continue
			}
			for _, spec := range gen.Specs {
				// The harness's types (bench, benchTarget, benchReport,
				// rawSMTP, rawIMAP, watchGroup, …): none here.
				n := spec.(*ast.TypeSpec).Name.Name
				if l := strings.ToLower(n); strings.HasPrefix(l, "bench") || strings.HasPrefix(l, "raw") || strings.HasPrefix(l, "watch") {
					t.Errorf("%s defines type %s: the bench harness belongs in internal/bench", name, n)
				}
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
