package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"

	"github.com/jackc/pgx/v5"
)

// CrossNodeResult is the outcome of "pushmail bench crossnode": two
// "pushmail serve" nodes on one PostgreSQL database.
type CrossNodeResult struct {
	Nodes int `json:"nodes"` // 2; 1 for the single-node comparison
	// Push: one IDLE watcher on node B, deliveries over SMTP to node A,
	// one at a time: from A's 250 to B's * N EXISTS.
	Push PushStats `json:"push"`
	// Ingest: the senders split over both nodes, then every
	// acknowledged message checked over IMAP on A.
	Ingest *IngestResult `json:"ingest"`
}

// benchPostgresEnv names the PostgreSQL server crossnode uses when
// --postgres is not given: the one ./test.sh starts for the tests.
const benchPostgresEnv = "PUSHMAIL_TEST_POSTGRES"

func crossnodeFlags(fs *flag.FlagSet) func(context.Context, *bench) (Result, error) {
	admin := fs.String("postgres", os.Getenv(benchPostgresEnv), "postgres:// URL of a role that may create databases: the run creates a fresh database there and drops it at the end (default: $"+benchPostgresEnv+")")
	messages := fs.Int("messages", 300, "deliveries timed from node A's 250 to node B's EXISTS")
	senders := fs.Int("senders", 16, "concurrent SMTP senders of the ingest phase, half to each node")
	ingestN := fs.Int("ingest", 6000, "messages the ingest phase delivers (0: no ingest phase)")
	size := fs.Int("size", 4096, "message size in bytes")
	nodes := fs.Int("nodes", 2, "nodes to run: 2, or 1 for the same figures from one node on PostgreSQL (SMTP and IDLE on that node)")
	return func(ctx context.Context, b *bench) (Result, error) {
		if *admin == "" {
			fmt.Fprintf(b.stderr, "pushmail bench crossnode: needs a PostgreSQL server: --postgres URL or $%s\n", benchPostgresEnv)
			return nil, ErrUsage
		}
		if b.server != "child" {
			fmt.Fprintln(b.stderr, "pushmail bench crossnode: runs two child servers (--server child)")
			return nil, ErrUsage
		}
		if *messages <= 0 || *senders <= 0 || *ingestN < 0 || *nodes < 1 || *nodes > 2 {
			return nil, errors.New("--messages and --senders must be positive, --ingest not negative, --nodes 1 or 2")
		}
		return runCrossNode(ctx, b, *admin, *nodes, *messages, *senders, *ingestN, *size)
	}
}

func runCrossNode(ctx context.Context, b *bench, admin string, nodeCount, messages, senders, ingestN, size int) (res *CrossNodeResult, err error) {
	dbURL, drop, err := createBenchDatabase(ctx, admin)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, drop()) }()
	if err := b.needFiles(2*senders + 64); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(b.dir, "pushmail-bench-")
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, os.RemoveAll(dir)) }()
	if err := prepareData(ctx, dbURL, nil); err != nil {
		return nil, fmt.Errorf("prepare the PostgreSQL store: %w", err)
	}
	b.store = dbURL
	var nodes []*benchTarget
	defer func() {
		for _, t := range nodes {
			err = errors.Join(err, t.stop())
		}
	}()
	for _, name := range []string{"a", "b"}[:nodeCount] {
		data := filepath.Join(dir, name)
		if err := os.Mkdir(data, 0o700); err != nil {
			return nil, err
		}
		t, err := b.startChild(ctx, data)
		if err != nil {
			return nil, fmt.Errorf("node %s: %w", name, err)
		}
		nodes = append(nodes, t)
	}
	a, bn := nodes[0], nodes[len(nodes)-1]
	b.progress("%d node(s) on one database: SMTP to %s, IDLE on %s; %d deliveries", nodeCount, a.smtpAddr, bn.imapAddr, messages)

	g := newWatchGroup(1, messages)
	if _, err := g.establish(ctx, b, bn, 1); err != nil {
		return nil, errors.Join(err, g.close())
	}
	stopProfile, err := b.startProfile()
	if err != nil {
		return nil, errors.Join(err, g.close())
	}
	ds, err := g.deliverAll(ctx, b, a, size)
	err = errors.Join(err, stopProfile(), g.close())
	if err != nil {
		return nil, err
	}
	res = &CrossNodeResult{Nodes: nodeCount, Push: g.stats(ds)}
	if ingestN > 0 {
		b.progress("ingest: %d senders over both nodes, %d messages", senders, ingestN)
		if res.Ingest, err = ingest(ctx, b, nodes, "pipelining", senders, ingestN, size); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// createBenchDatabase creates a fresh database on the server admin names
// and returns its URL and a function that drops it. Administration, not
// the store: the store's SQL stays in mailstore.
func createBenchDatabase(ctx context.Context, admin string) (dbURL string, drop func() error, err error) {
	u, err := url.Parse(admin)
	if err != nil {
		return "", nil, fmt.Errorf("--postgres: %w", err)
	}
	var rnd [6]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return "", nil, err
	}
	name := "pushmail_bench_" + hex.EncodeToString(rnd[:])
	exec := func(ctx context.Context, q string) error {
		c, err := pgx.Connect(ctx, admin)
		if err != nil {
			return err
		}
		defer c.Close(context.Background())
		_, err = c.Exec(ctx, q)
		return err
	}
	if err := exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", nil, fmt.Errorf("create the bench database: %w", err)
	}
	u.Path = "/" + name
	return u.String(), func() error {
		return exec(context.Background(), "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
	}, nil
}

func (r *CrossNodeResult) WriteText(w io.Writer) {
	if r.Nodes == 1 {
		fmt.Fprintf(w, "one node on PostgreSQL: SMTP and IDLE on it\n")
	} else {
		fmt.Fprintf(w, "two nodes, one PostgreSQL store: SMTP to node A, IDLE on node B\n")
	}
	writePush(w, r.Push)
	if r.Ingest != nil {
		fmt.Fprintf(w, "ingest over %d node(s):\n", r.Nodes)
		r.Ingest.WriteText(w)
	}
}
