package main

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"

	"pushmail/internal/bench"
	"pushmail/internal/pgtest"
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
func checkPush(t *testing.T, p bench.PushStats, watchers, deliveries int) {
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
			var res bench.LatencyResult
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
	var res bench.IngestResult
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
	var res bench.IdleResult
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
	var res bench.IdleResult
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
	var res bench.LatencyResult
	runBenchJSON(t, &res, "latency", "--smtp", srv.addr("smtp"), "--imap", srv.addr("imap"),
		"--user", "ext@localhost", "--password", "secret", "--server-pid", strconv.Itoa(srv.cmd.Process.Pid),
		"--watchers", "2", "--messages", "3")
	checkPush(t, res.Push, 2, 3)
}

func TestBenchBigbox(t *testing.T) {
	t.Parallel()
	var res bench.BigboxResult
	runBenchJSON(t, &res, "bigbox", "--messages", "200", "--repeat", "2")
	if res.Messages != 200 || res.Loaded != 200 || len(res.Ops) != 7 {
		t.Fatalf("bigbox: %d messages, %d loaded, %d commands; want 200, 200, 7", res.Messages, res.Loaded, len(res.Ops))
	}
	want := map[string]int{"select": 200, "fetch_flags": 200, "search_unseen": 2, "search_text": 1,
		"sort_date": 200, "thread_references": 20}
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

// The QRESYNC reconnect: the answer is checked by the mode itself (each
// of the 100 changes once); here, that every command was timed and the
// full resynchronisation read every message.
func TestBenchQResync(t *testing.T) {
	t.Parallel()
	var res bench.QResyncResult
	runBenchJSON(t, &res, "qresync", "--messages", "400", "--repeat", "2")
	if res.Messages != 400 || res.Changes != 100 || len(res.Ops) != 3 {
		t.Fatalf("qresync: %d messages, %d changes, %d commands; want 400, 100, 3", res.Messages, res.Changes, len(res.Ops))
	}
	want := map[string]int{"qresync": 100, "select": 400, "full": 800}
	for _, op := range res.Ops {
		if op.Result != want[op.Name] || op.Median <= 0 {
			t.Errorf("%s answered %d in %.2f ms, want %d", op.Command, op.Result, op.Median, want[op.Name])
		}
	}
}

func TestBenchFsync(t *testing.T) {
	t.Parallel()
	var res bench.FsyncResult
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

// TestBenchIngestClients runs the ingest bench at tiny sizes with each
// SMTP client: every message acknowledged and found, nothing lost.
func TestBenchIngestClients(t *testing.T) {
	t.Parallel()
	for _, client := range []string{"pipelining", "gosmtp"} {
		t.Run(client, func(t *testing.T) {
			t.Parallel()
			var res bench.IngestResult
			runBenchJSON(t, &res, "ingest", "--server", "inproc", "--client", client,
				"--senders", "3", "--messages", "30", "--size", "1500")
			if res.Client != client || res.Acked != 30 || res.Failed != 0 || res.Found != 30 || res.Lost != 0 || res.Duplicates != 0 {
				t.Errorf("ingest: client %q, %d acked, %d refused, %d found, %d lost, %d duplicated; want %q, 30, 0, 30, 0, 0",
					res.Client, res.Acked, res.Failed, res.Found, res.Lost, res.Duplicates, client)
			}
		})
	}
}

// TestBenchLatencyChanges runs "bench latency --change flags|expunge" at
// tiny sizes: every watcher sees every change, and the JSON decodes. It
// never looks at timings.
func TestBenchLatencyChanges(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		change   bench.ChangeKind
		watchers int
		client   string
	}{
		{"flags, imapclient watcher", bench.ChangeFlags, 1, "imapclient"},
		{"flags, raw watchers", bench.ChangeFlags, 4, "raw"},
		{"expunge, imapclient watcher", bench.ChangeExpunge, 1, "imapclient"},
		{"expunge, raw watchers", bench.ChangeExpunge, 4, "raw"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			const changes = 5
			var res bench.LatencyResult
			runBenchJSON(t, &res, "latency", "--change", string(tc.change), "--watchers", strconv.Itoa(tc.watchers),
				"--messages", strconv.Itoa(changes), "--size", "600")
			if res.Change != tc.change || res.Watchers != tc.watchers || res.Client != tc.client {
				t.Errorf("result = change %q, %d watchers, client %q; want %q, %d, %q", res.Change, res.Watchers, res.Client, tc.change, tc.watchers, tc.client)
			}
			p := res.ChangePush
			if p == nil {
				t.Fatal("no change_push in the result")
			}
			if p.Missed != 0 {
				t.Errorf("missed = %d, want 0", p.Missed)
			}
			if p.FromOK.N != tc.watchers*changes || p.FromCommand.N != tc.watchers*changes {
				t.Errorf("push samples = %d and %d, want %d", p.FromOK.N, p.FromCommand.N, tc.watchers*changes)
			}
			for name, n := range map[string]int{"all_notified": p.AllNotified.N, "command_to_all": p.CommandToAll.N, "spread": p.Spread.N, "command_round_trip": p.RoundTrip.N} {
				if n != changes {
					t.Errorf("%s has %d samples, want one per change, %d", name, n, changes)
				}
			}
			if res.Push.FromAck.N != 0 {
				t.Errorf("push (new mail) has %d samples, want none", res.Push.FromAck.N)
			}
		})
	}
}

func TestBenchLatencyBadChange(t *testing.T) {
	t.Parallel()
	if code := run([]string{"bench", "latency", "--change", "rename", "--quiet", "--dir", t.TempDir()}, strings.NewReader(""), io.Discard, io.Discard); code == 0 {
		t.Errorf("bench latency --change rename: exit 0, want an error")
	}
}

// TestBenchJMAP: the jmap mode opens its event streams and every stream
// hears every delivery.
func TestBenchJMAP(t *testing.T) {
	t.Parallel()
	var res bench.JMAPResult
	runBenchJSON(t, &res, "jmap", "--streams", "3", "--messages", "5", "--size", "600")
	if res.Streams != 3 || res.Messages != 5 || res.Missed != 0 {
		t.Errorf("result = %d streams, %d messages, %d missed; want 3, 5, 0", res.Streams, res.Messages, res.Missed)
	}
	if res.FromAck.N != 15 || res.AllNotified.N != 5 {
		t.Errorf("samples = %d and %d; want 15 (per stream and message) and 5 (per message)", res.FromAck.N, res.AllNotified.N)
	}
}

// TestBenchCrossNode runs the two-node mode on the tests' PostgreSQL
// server (skipped without one): every delivery to node A is seen in IDLE
// on node B, and the ingest over both nodes loses nothing.
func TestBenchCrossNode(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	if !pgtest.Available() {
		t.Skipf("%s is not set: no PostgreSQL server for the two nodes", pgtest.EnvVar)
	}
	t.Parallel()
	var res bench.CrossNodeResult
	runBenchJSON(t, &res, "crossnode", "--server-binary", pushmailBinary(t), "--postgres", os.Getenv(pgtest.EnvVar),
		"--messages", "5", "--senders", "4", "--ingest", "40", "--size", "2000")
	if res.Nodes != 2 {
		t.Errorf("nodes = %d, want 2", res.Nodes)
	}
	checkPush(t, res.Push, 1, 5)
	in := res.Ingest
	if in == nil || in.Acked != 40 || in.Failed != 0 || in.Found != 40 || in.Lost != 0 || in.Duplicates != 0 {
		t.Fatalf("ingest over two nodes = %+v; want 40 acknowledged, found once each", in)
	}
	if in.ServerCPUPerMsg == nil || in.Batches == 0 {
		t.Errorf("ingest: CPU %v, %d batches; want both nodes' CPU and commits", in.ServerCPUPerMsg, in.Batches)
	}
}
