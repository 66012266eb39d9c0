package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"pushmail/mailstore"
	"pushmail/notify"
)

func get(t *testing.T, url, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

func TestHealthzAndMetrics(t *testing.T) {
	ctx := context.Background()
	reg := newRegistry()
	hub := notify.New(0)
	registerHubMetrics(reg, hub)
	store, err := mailstore.Open(ctx, filepath.Join(t.TempDir(), "m.db"), mailstore.Options{
		Hub: hub, PasswordCost: bcrypt.MinCost, OnCommit: newStoreMetrics(reg).observe,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(adminHandler(store, reg, "s3cret"))
	defer srv.Close()

	if code, body := get(t, srv.URL+"/healthz", ""); code != 200 || strings.TrimSpace(body) != "ok" {
		t.Errorf("/healthz = %d %q, want 200 ok", code, body)
	}
	if code, _ := get(t, srv.URL+"/metrics", ""); code != http.StatusUnauthorized {
		t.Errorf("/metrics without token = %d, want 401", code)
	}
	if code, _ := get(t, srv.URL+"/metrics", "wrong"); code != http.StatusUnauthorized {
		t.Errorf("/metrics with a wrong token = %d, want 401", code)
	}

	if _, err := store.AddUser(ctx, "u@localhost", "pw"); err != nil {
		t.Fatal(err)
	}
	r, err := store.Resolve(ctx, "u@localhost")
	if err != nil {
		t.Fatal(err)
	}
	sub := hub.Subscribe(int64(r.Mailbox))
	defer sub.Close()
	if _, err := store.Deliver(ctx, []byte("Subject: m\r\n\r\nhi\r\n"), []mailstore.Recipient{r}); err != nil {
		t.Fatal(err)
	}
	code, body := get(t, srv.URL+"/metrics", "s3cret")
	if code != 200 {
		t.Fatalf("/metrics = %d", code)
	}
	for _, want := range []string{
		`pushmail_store_commit_seconds_count [1-9]`, // the user and the delivery
		`pushmail_store_batch_writes_count [1-9]`,
		`pushmail_notify_subscriptions 1`,
		`pushmail_notify_resyncs_total 0`,
		`go_goroutines [0-9]`,
	} {
		if !regexp.MustCompile(`(?m)^` + want).MatchString(body) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	// The store goes away: health fails, with a reason.
	store.Close()
	if code, body := get(t, srv.URL+"/healthz", ""); code != http.StatusServiceUnavailable || !strings.Contains(body, "unhealthy") {
		t.Errorf("/healthz with the store closed = %d %q, want 503", code, body)
	}
}
