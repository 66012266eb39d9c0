package jmap

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"pushmail/mailstore"
)

// BenchmarkEmailQuery100k: Email/query sorted by receivedAt (newest
// first), the first 50 ids, over a 100,000-message INBOX, over HTTP (the
// issue's goal: ≤ 10 ms). The messages are stored once, by AppendBatch.
func BenchmarkEmailQuery100k(b *testing.B) {
	env := newBenchEnv(b)
	ctx := context.Background()
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	const total, chunk = 100_000, 1000
	for i := 0; i < total; i += chunk {
		msgs := make([]mailstore.AppendMessage, chunk)
		for j := range msgs {
			n := i + j
			msgs[j] = mailstore.AppendMessage{Raw: fmt.Appendf(nil, "From: s%d@example.org\r\nTo: alice@localhost\r\nSubject: message %d\r\nMessage-ID: <%d@example.org>\r\n\r\nbody %d\r\n", n%97, n, n, n),
				Date: base.Add(time.Duration(n) * time.Second)}
		}
		if _, err := env.store.AppendBatch(ctx, env.user.Mailbox, msgs, 0); err != nil {
			b.Fatal(err)
		}
	}
	body, _ := json.Marshal(map[string]any{"using": []string{capCore, capMail}, "methodCalls": []any{
		[]any{"Email/query", map[string]any{"accountId": env.account(), "filter": map[string]any{"inMailbox": mailboxID(env.user.Mailbox)},
			"sort": []any{map[string]any{"property": "receivedAt", "isAscending": false}}, "limit": 50}, "q"}}})
	b.ResetTimer()
	for b.Loop() {
		status, out := env.doB(b, "POST", "/jmap/api", body)
		if status != http.StatusOK {
			b.Fatalf("%d %s", status, out)
		}
	}
}
