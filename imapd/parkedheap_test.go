package imapd

import (
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"testing"
)

// TestParkedHeapProfile writes a heap profile (every allocation sampled)
// of parked sessions, plaintext and over implicit TLS, into the directory
// PUSHMAIL_PARKED_HEAPPROFILE names; skipped without it. What a parked
// session holds is the server's part of the profile (the clients run in
// the test's process: `go tool pprof -sample_index=inuse_space
// -focus='imapd\.\(\*(Server|session)\)'`).
func TestParkedHeapProfile(t *testing.T) {
	dir := os.Getenv("PUSHMAIL_PARKED_HEAPPROFILE")
	if dir == "" {
		t.Skip("PUSHMAIL_PARKED_HEAPPROFILE is not set")
	}
	const sessions = 300
	old := runtime.MemProfileRate
	runtime.MemProfileRate = 1
	t.Cleanup(func() { runtime.MemProfileRate = old })
	for _, useTLS := range []bool{false, true} {
		name := "plain"
		if useTLS {
			name = "tls"
		}
		t.Run(name, func(t *testing.T) {
			cfg := testTLSConfig(t)
			env := newTestEnv(t, envOptions{server: Options{Hibernate: true, TLSConfig: cfg, MaxConns: -1, MaxConnsPerIP: -1}})
			addr := env.addr
			if useTLS {
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatalf("Listen() = %v", err)
				}
				go env.srv.ServeTLS(ln, cfg) // ends with the env's Shutdown
				addr = ln.Addr().String()
			}
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			for range sessions {
				conn, err := net.DialTimeout("tcp", addr, waitTimeout)
				if err != nil {
					t.Fatal(err)
				}
				if useTLS {
					conn = tls.Client(conn, &tls.Config{InsecureSkipVerify: true, ServerName: "localhost"})
				}
				t.Cleanup(func() { conn.Close() })
				if _, err := startIdleOn(conn); err != nil {
					t.Fatal(err)
				}
			}
			waitParked(t, env, sessions)
			runtime.GC()
			runtime.GC()
			runtime.ReadMemStats(&after)
			t.Logf("%s: heap in use %.0f B per parked session (clients included)", name, float64(after.HeapInuse-before.HeapInuse)/sessions)
			f, err := os.Create(filepath.Join(dir, name+".heap"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
				t.Fatal(err)
			}
		})
	}
}
