package main

import (
	"bytes"
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"testing"
)

// runBenchJSON runs "pushmail bench ARGS --json" in this process and
// decodes the report's result into res. It never looks at timings: the
// smoke runs only prove that every mode still works end to end.
func runBenchJSON(t *testing.T, res any, args ...string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	args = append(append([]string{"bench"}, args...), "--json", "--quiet", "--dir", t.TempDir())
	if code := run(args, strings.NewReader(""), &stdout, &stderr); code != 0 {
		t.Fatalf("pushmail %s: exit %d\n%s", strings.Join(args, " "), code, stderr.String())
	}
	var report struct {
		Mode   string          `json:"mode"`
		CPUs   int             `json:"cpus"`
		Result json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &report); err != nil {
		t.Fatalf("pushmail %s: output is not JSON: %v\n%s", strings.Join(args, " "), err, stdout.String())
	}
	if report.Mode != args[1] || report.CPUs <= 0 {
		t.Errorf("report mode %q, cpus %d; want %q and a positive count", report.Mode, report.CPUs, args[1])
	}
	if err := json.Unmarshal(report.Result, res); err != nil {
		t.Fatalf("decode %s result: %v\n%s", args[1], err, report.Result)
	}
}

// checkPush checks that every watcher saw every delivery.
func checkPush(t *testing.T, p pushStats, watchers, deliveries int) {
	t.Helper()
	if p.Missed != 0 {
		t.Errorf("missed = %d, want 0", p.Missed)
	}
	if p.FromAck.N != watchers*deliveries || p.FromStart.N != watchers*deliveries {
		t.Errorf("push samples = %d and %d, want %d", p.FromAck.N, p.FromStart.N, watchers*deliveries)
	}
	for name, n := range map[string]int{"all_notified": p.AllNotified.N, "mail_from_to_all": p.StartToAll.N, "spread": p.Spread.N, "smtp_transaction": p.SMTP.N} {
		if n != deliveries {
			t.Errorf("%s has %d samples, want one per delivery, %d", name, n, deliveries)
		}
	}
}

func TestBenchLatency(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		watchers int
		client   string
	}{
		{"imapclient watcher", 1, "imapclient"},
		{"raw watchers", 4, "raw"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var res latencyResult
			runBenchJSON(t, &res, "latency", "--watchers", strconv.Itoa(tc.watchers), "--messages", "5", "--size", "600")
			if res.Watchers != tc.watchers || res.Messages != 5 || res.Client != tc.client {
				t.Errorf("result = %d watchers, %d messages, client %q; want %d, 5, %q", res.Watchers, res.Messages, res.Client, tc.watchers, tc.client)
			}
			checkPush(t, res.Push, tc.watchers, 5)
		})
	}
}

func TestBenchIngest(t *testing.T) {
	t.Parallel()
	var res ingestResult
	runBenchJSON(t, &res, "ingest", "--server", "inproc", "--senders", "4", "--messages", "40", "--size", "2000")
	if res.Acked != 40 || res.Failed != 0 || res.Found != 40 || res.Lost != 0 || res.Duplicates != 0 {
		t.Errorf("ingest: %d acked, %d refused, %d found, %d lost, %d duplicated; want 40, 0, 40, 0, 0",
			res.Acked, res.Failed, res.Found, res.Lost, res.Duplicates)
	}
	if res.Latency.N != 40 || res.ServerCPUPerMsg == nil || res.Batches == 0 {
		t.Errorf("ingest: %d latencies, CPU %v, %d batches; want 40, a CPU figure and some batches", res.Latency.N, res.ServerCPUPerMsg, res.Batches)
	}
}

func TestBenchIdle(t *testing.T) {
	t.Parallel()
	var res idleResult
	runBenchJSON(t, &res, "idle", "--server", "inproc", "--sessions", "6", "--deliveries", "2", "--settle", "0")
	if res.Sessions != 6 || res.RSSBefore == 0 || res.RSSSettled == 0 {
		t.Errorf("idle: %d sessions, RSS %d before and %d after; want 6 and both read", res.Sessions, res.RSSBefore, res.RSSSettled)
	}
	checkPush(t, res.Push, 6, 2)
}

// TestBenchChildServer runs the server as "pushmail serve", as ingest and
// idle do by default.
func TestBenchChildServer(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	t.Parallel()
	var res idleResult
	runBenchJSON(t, &res, "idle", "--server", "child", "--server-binary", pushmailBinary(t),
		"--sessions", "3", "--deliveries", "1", "--settle", "0")
	if res.RSSBefore == 0 || res.RSSSettled == 0 {
		t.Errorf("idle: server RSS %d before and %d after; want both read from /proc", res.RSSBefore, res.RSSSettled)
	}
	checkPush(t, res.Push, 3, 1)
}

// TestBenchExternalServer points the bench at a running server with
// --smtp, --imap, --user and --password.
func TestBenchExternalServer(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	t.Parallel()
	data := t.TempDir()
	srv := startServer(t, data)
	cli(t, "secret\n", "user", "add", "ext@localhost", "--data", data, "--password-stdin")
	var res latencyResult
	runBenchJSON(t, &res, "latency", "--smtp", srv.addr("smtp"), "--imap", srv.addr("imap"),
		"--user", "ext@localhost", "--password", "secret", "--server-pid", strconv.Itoa(srv.cmd.Process.Pid),
		"--watchers", "2", "--messages", "3")
	checkPush(t, res.Push, 2, 3)
}

func TestBenchBigbox(t *testing.T) {
	t.Parallel()
	var res bigboxResult
	runBenchJSON(t, &res, "bigbox", "--messages", "200", "--repeat", "2")
	if res.Messages != 200 || res.Loaded != 200 || len(res.Ops) != 5 {
		t.Fatalf("bigbox: %d messages, %d loaded, %d commands; want 200, 200, 5", res.Messages, res.Loaded, len(res.Ops))
	}
	want := map[string]int{"select": 200, "fetch_flags": 200, "search_unseen": 2, "search_text": 1}
	for _, op := range res.Ops {
		if op.Error != "" {
			t.Errorf("%s: %s", op.Command, op.Error)
			continue
		}
		if w, ok := want[op.Name]; ok && op.Result != w {
			t.Errorf("%s answered %d, want %d", op.Command, op.Result, w)
		}
		if op.Name == "fetch_body" && op.Result < 500 {
			t.Errorf("%s returned %d bytes, want a whole message", op.Command, op.Result)
		}
	}
}

func TestBenchFsync(t *testing.T) {
	t.Parallel()
	var res fsyncResult
	runBenchJSON(t, &res, "fsync", "--duration", "50ms")
	if res.Syncs == 0 || res.Latency.N != res.Syncs {
		t.Errorf("fsync: %d syncs, %d latencies; want some, equal", res.Syncs, res.Latency.N)
	}
}

func TestBenchUsage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		want int
	}{
		{"no mode", []string{"bench"}, 2},
		{"help", []string{"bench", "--help"}, 0},
		{"unknown mode", []string{"bench", "nope"}, 2},
		{"mode help", []string{"bench", "latency", "--help"}, 0},
		{"half an external target", []string{"bench", "latency", "--smtp", "127.0.0.1:25"}, 2},
		{"bad server kind", []string{"bench", "ingest", "--server", "remote"}, 2},
	}
	if exe, err := os.Executable(); err == nil && strings.HasSuffix(exe, ".test") {
		tests = append(tests, struct {
			name string
			args []string
			want int
		}{"child from a test binary", []string{"bench", "idle", "--server", "child"}, 2})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(tc.args, strings.NewReader(""), &stdout, &stderr); code != tc.want {
				t.Errorf("pushmail %s: exit %d, want %d\n%s", strings.Join(tc.args, " "), code, tc.want, stderr.String())
			}
		})
	}
}

func TestParseExists(t *testing.T) {
	t.Parallel()
	tests := []struct {
		line string
		n    uint32
		ok   bool
	}{
		{"* 7 EXISTS\r\n", 7, true},
		{"* 4294967295 EXISTS\r\n", 4294967295, true},
		{"* 4294967296 EXISTS\r\n", 0, false},
		{"* 7 RECENT\r\n", 0, false},
		{"* OK [UIDNEXT 8] Predicted next UID\r\n", 0, false},
		{"* EXISTS\r\n", 0, false},
		{"a1 OK 7 EXISTS\r\n", 0, false},
	}
	for _, tc := range tests {
		if n, ok := parseExists([]byte(tc.line)); n != tc.n || ok != tc.ok {
			t.Errorf("parseExists(%q) = %d, %v; want %d, %v", tc.line, n, ok, tc.n, tc.ok)
		}
	}
}

func TestLiteralSize(t *testing.T) {
	t.Parallel()
	tests := []struct {
		line string
		n    int
		ok   bool
	}{
		{"* 1 FETCH (BODY[] {1081}\r\n", 1081, true},
		{"* 1 FETCH (BODY[] {12+}\r\n", 12, true},
		{"* 1 FETCH (FLAGS (\\Seen))\r\n", 0, false},
		{"* OK {x}\r\n", 0, false},
	}
	for _, tc := range tests {
		if n, ok := literalSize([]byte(tc.line)); n != tc.n || ok != tc.ok {
			t.Errorf("literalSize(%q) = %d, %v; want %d, %v", tc.line, n, ok, tc.n, tc.ok)
		}
	}
}
