#!/usr/bin/env bash
# pushmail's whole test suite: the one test command the README gives and
# .ci/run calls. It installs the third-party clients the interop tests
# drive (swaks, openssl, python3, mbsync from isync, curl, postfix, mutt,
# script from bsdutils, fetchmail, chromium, node and npm) and Debian's
# postgresql package when they are missing, starts a throwaway PostgreSQL
# cluster (scripts/pgcluster.sh) whose URL the tests read from
# PUSHMAIL_TEST_POSTGRES, then checks formatting, vets, runs every test
# with the race detector, and the mailstore suite once more on PostgreSQL.
# The cluster is stopped and removed on exit.
set -euo pipefail
cd "$(dirname "$0")"

# go-sqlite3 compiles SQLite's FTS5 (the full-text index of mailstore)
# only with this build tag. In GOFLAGS, every go command below has it,
# and so do the go commands tests run (the binary cmd/pushmail's tests
# build).
export GOFLAGS="${GOFLAGS:+$GOFLAGS }-tags=sqlite_fts5"

# Interop tests run real clients no one here wrote; install what is missing.
missing=()
for tool in swaks:swaks openssl:openssl python3:python3 mbsync:isync curl:curl postfix:postfix mutt:mutt script:bsdutils fetchmail:fetchmail chromium:chromium node:nodejs npm:npm; do
	command -v "${tool%%:*}" >/dev/null 2>&1 || missing+=("${tool#*:}")
done
# PostgreSQL's server binaries, for the cluster below (Debian puts them
# outside PATH; its postgresql package brings pg_trgm too). The package
# would also make and start a cluster of its own, a system-wide service:
# the tests start a throwaway one instead, so it is told to make none
# (postgresql-common's createcluster.d), before it is installed.
no_main_cluster=:
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
	missing+=(postgresql)
	no_main_cluster='mkdir -p /etc/postgresql-common/createcluster.d && echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.d/pushmail-tests.conf'
fi
if [ ${#missing[@]} -gt 0 ]; then
	if [ "$(id -u)" = 0 ]; then
		echo "test.sh: installing ${missing[*]}"
		sh -c "$no_main_cluster"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq
		apt-get install -y -qq "${missing[@]}" >/dev/null
	elif command -v sudo >/dev/null 2>&1; then
		echo "test.sh: installing ${missing[*]} with sudo"
		sudo sh -c "$no_main_cluster"
		sudo DEBIAN_FRONTEND=noninteractive apt-get update -qq
		sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
	else
		echo "test.sh: cannot install ${missing[*]} (not root, no sudo): their interop tests will skip" >&2
	fi
fi

# jmap-jam, the Node JMAP client TestJMAPJam drives, from its lockfile.
if command -v npm >/dev/null 2>&1; then
	npm ci --prefix jmap/testdata/jmapjam --no-audit --no-fund --loglevel=error >/dev/null
else
	echo "test.sh: npm missing: TestJMAPJam will skip" >&2
fi

unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
	echo "test.sh: gofmt would change:" >&2
	echo "$unformatted" >&2
	exit 1
fi
go vet ./...

# A throwaway PostgreSQL cluster for the tests of the PostgreSQL store
# (internal/pgtest makes a fresh database in it per test). Without the
# server binaries, PUSHMAIL_TEST_POSTGRES stays unset and those tests skip;
# set to an admin URL beforehand, it names a server to use instead.
if [ -n "${PUSHMAIL_TEST_POSTGRES:-}" ]; then
	echo "test.sh: PostgreSQL for the tests at $PUSHMAIL_TEST_POSTGRES (given)"
elif ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
	pgdir=$(mktemp -d)
	trap 'scripts/pgcluster.sh stop "$pgdir" || true; rm -rf "$pgdir"' EXIT
	PUSHMAIL_TEST_POSTGRES=$(scripts/pgcluster.sh start "$pgdir")
	export PUSHMAIL_TEST_POSTGRES
	echo "test.sh: PostgreSQL for the tests at $PUSHMAIL_TEST_POSTGRES"
else
	echo "test.sh: no PostgreSQL server binaries: the PostgreSQL store's tests will skip" >&2
fi
go test -race -count=1 -timeout 20m "$@" ./...
# The store's own suite once more on PostgreSQL, the model tests among
# it: openTestStore gives each test a fresh database (PUSHMAIL_TEST_STORE).
# Without the race detector, which would double the run's length: the
# code only PostgreSQL runs (the cross-node listener, the driver wrapper)
# is raced by the tests of it in the run above.
if [ -n "${PUSHMAIL_TEST_POSTGRES:-}" ]; then
	echo "test.sh: the mailstore suite on PostgreSQL"
	PUSHMAIL_TEST_STORE=postgres go test -count=1 -timeout 20m "$@" ./mailstore
fi

# Then every fuzz target (func FuzzX in any package) runs for a bounded
# number of executions, about ten seconds each here. The budget is a count
# ("Nx"), not a duration: with a duration, go1.26's fuzz coordinator can
# fail a clean run with "context deadline exceeded" when the deadline races
# a worker's last input (go.dev/issue/75804, fixed in go1.27).
# PUSHMAIL_FUZZTIME overrides every target's budget (a count like 50000x, or
# a duration when chasing a bug by hand); PUSHMAIL_FUZZTIME=0 skips fuzzing,
# for quick local runs. A failing input is written to the package's
# testdata/fuzz/FuzzX/: fix the bug and commit the file, and every later
# `go test` replays it. Minimising is kept short so that a new input does
# not eat a target's whole budget.
fuzz_budget() {
	if [ -n "${PUSHMAIL_FUZZTIME:-}" ]; then
		echo "$PUSHMAIL_FUZZTIME"
		return
	fi
	case "$1" in
	FuzzIMAPSession) echo 3000x ;;   # a whole IMAP session per input: ~300/s
	FuzzSMTPSession) echo 5000x ;;   # a whole SMTP session per input: ~500-2000/s
	FuzzPOP3Session) echo 6000x ;;   # a whole POP3 session per input, store checked after: ~600/s
	FuzzParse) echo 150000x ;;       # MIME parsing: ~10-30k/s
	FuzzStoreModel) echo 150x ;;     # a model-checked store op sequence per input: 1-10/s in fuzz mode here (2026-12-06), new inputs minimised
	FuzzParser) echo 80000x ;;       # imapd/wire: one input parsed twice, at once and byte by byte: ~8k/s
	*) echo 300000x ;;               # small pure functions: ~35k/s
	esac
}
if [ "${PUSHMAIL_FUZZTIME:-}" != 0 ] && [ "${PUSHMAIL_FUZZTIME:-}" != 0s ]; then
	# "go test -list" prints a package's fuzz targets, then "ok <package>".
	go test -list '^Fuzz' ./... |
		awk '/^Fuzz/ { names = names " " $1 } /^ok/ { if (names != "") print $2 names; names = "" }' |
		while read -r pkg names; do
			for name in $names; do
				budget=$(fuzz_budget "$name")
				echo "test.sh: fuzzing $name in $pkg for $budget"
				go test -run '^$' -fuzz "^$name\$" -fuzztime "$budget" -fuzzminimizetime 5s "$pkg" </dev/null
			done
		done
fi
