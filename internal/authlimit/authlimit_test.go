package authlimit

import (
	"fmt"
	"testing"
	"time"
)

var t0 = time.Unix(1_000_000_000, 0)

func TestDefaults(t *testing.T) {
	t.Parallel()
	got := New(Config{}).Config()
	want := Config{PerIP: 20, PerAccount: 10, Window: 15 * time.Minute, Delay: 250 * time.Millisecond}
	if got != want {
		t.Errorf("New(Config{}).Config() = %+v, want %+v", got, want)
	}
}

func TestDelayDoublesUpTo32Times(t *testing.T) {
	t.Parallel()
	l := New(Config{PerIP: 100, PerAccount: 100, Delay: time.Second})
	want := []time.Duration{1, 2, 4, 8, 16, 32, 32, 32}
	for i, w := range want {
		if got := l.Failed("192.0.2.1", "alice@example.org", t0); got != w*time.Second {
			t.Errorf("Failed() #%d = %v, want %v", i+1, got, w*time.Second)
		}
	}
	// The delay follows the larger count: a fresh IP guessing the same
	// account waits as long as the account's count says.
	if got := l.Failed("192.0.2.2", "alice@example.org", t0); got != 32*time.Second {
		t.Errorf("Failed() from a new IP for a counted account = %v, want 32s", got)
	}
	if got := l.Failed("192.0.2.3", "bob@example.org", t0); got != time.Second {
		t.Errorf("Failed() for a new IP and account = %v, want 1s", got)
	}
}

// TestPolicy walks through one scenario; each step is a call and what it
// must answer.
func TestPolicy(t *testing.T) {
	t.Parallel()
	const (
		attacker = "203.0.113.9"
		home     = "198.51.100.7"
		roaming  = "192.0.2.44"
		alice    = "alice@example.org"
		bob      = "bob@example.org"
	)
	l := New(Config{PerIP: 5, PerAccount: 3, Window: 10 * time.Minute, Delay: time.Millisecond})
	// Alice logs in from home once: home becomes trusted for her.
	l.Succeeded(home, alice, t0)

	// Three guesses at alice's password from the attacker lock the
	// account for untrusted addresses.
	for i := range 3 {
		if v := l.Check(attacker, alice, t0); v != Allowed {
			t.Fatalf("guess %d: Check = %v, want allowed", i+1, v)
		}
		l.Failed(attacker, alice, t0)
	}
	steps := []struct {
		name    string
		ip, acc string
		at      time.Duration
		want    Verdict
	}{
		{"account locked for the attacker", attacker, alice, time.Minute, AccountBlocked},
		{"account locked from a new address", roaming, alice, time.Minute, AccountBlocked},
		{"owner's known address still allowed", home, alice, time.Minute, Allowed},
		{"other accounts unaffected, from the attacker's IP", attacker, bob, time.Minute, Allowed},
		{"other accounts unaffected, from elsewhere", roaming, bob, time.Minute, Allowed},
		{"still locked just inside the window", roaming, alice, 10 * time.Minute, AccountBlocked},
		{"lock over after the window", roaming, alice, 10*time.Minute + time.Second, Allowed},
	}
	for _, s := range steps {
		if v := l.Check(s.ip, s.acc, t0.Add(s.at)); v != s.want {
			t.Errorf("%s: Check(%s, %s) = %v, want %v", s.name, s.ip, s.acc, v, s.want)
		}
	}
}

// TestRefusalsDoNotExtendTheLock: an attacker who keeps trying while
// refused does not push the end of the lock further out.
func TestRefusalsDoNotExtendTheLock(t *testing.T) {
	t.Parallel()
	l := New(Config{PerIP: 100, PerAccount: 2, Window: time.Minute, Delay: time.Millisecond})
	l.Failed("203.0.113.9", "alice@example.org", t0)
	l.Failed("203.0.113.9", "alice@example.org", t0)
	for s := 1; s <= 60; s++ {
		if v := l.Check("203.0.113.9", "alice@example.org", t0.Add(time.Duration(s)*time.Second)); v != AccountBlocked {
			t.Fatalf("at +%ds: Check = %v, want account blocked", s, v)
		}
	}
	if v := l.Check("192.0.2.1", "alice@example.org", t0.Add(61*time.Second)); v != Allowed {
		t.Errorf("a window after the last counted failure: Check = %v, want allowed", v)
	}
}

func TestIPLimit(t *testing.T) {
	t.Parallel()
	l := New(Config{PerIP: 3, PerAccount: 100, Window: time.Minute, Delay: time.Millisecond})
	for i := range 3 {
		l.Failed("203.0.113.9", fmt.Sprintf("user%d@example.org", i), t0)
	}
	for _, tc := range []struct {
		name, ip, acc string
		want          Verdict
	}{
		{"any account from the address", "203.0.113.9", "new@example.org", IPBlocked},
		{"even a trusted pair", "203.0.113.9", "user0@example.org", IPBlocked},
		{"other addresses unaffected", "203.0.113.10", "user0@example.org", Allowed},
	} {
		if v := l.Check(tc.ip, tc.acc, t0); v != tc.want {
			t.Errorf("%s: Check(%s, %s) = %v, want %v", tc.name, tc.ip, tc.acc, v, tc.want)
		}
	}
}

func TestSuccessResetsTheAccountNotTheIP(t *testing.T) {
	t.Parallel()
	l := New(Config{PerIP: 3, PerAccount: 2, Window: time.Minute, Delay: time.Millisecond})
	l.Failed("192.0.2.1", "alice@example.org", t0)
	l.Succeeded("192.0.2.1", "alice@example.org", t0)
	// One more failure from a new address is the account's first again.
	if d := l.Failed("192.0.2.2", "alice@example.org", t0); d != time.Millisecond {
		t.Errorf("after a success, Failed() = %v, want the first delay", d)
	}
	if v := l.Check("192.0.2.3", "alice@example.org", t0); v != Allowed {
		t.Errorf("Check after success and one failure = %v, want allowed", v)
	}
	// The attacker's own account cannot reset the attacker's address.
	l.Failed("203.0.113.9", "alice@example.org", t0)
	l.Failed("203.0.113.9", "bob@example.org", t0)
	l.Succeeded("203.0.113.9", "mallory@example.org", t0)
	l.Failed("203.0.113.9", "carol@example.org", t0)
	if v := l.Check("203.0.113.9", "dave@example.org", t0); v != IPBlocked {
		t.Errorf("Check after 3 failures around a success = %v, want ip blocked", v)
	}
}

// TestOwnerSuccessKeepsTheAttackersCount: issue 13, "the lockout budget
// resets". The owner logging in from home must not hand an attacker a
// fresh set of guesses at the account.
func TestOwnerSuccessKeepsTheAttackersCount(t *testing.T) {
	t.Parallel()
	const (
		n        = 5
		attacker = "203.0.113.9"
		home     = "198.51.100.7"
		alice    = "alice@example.org"
	)
	l := New(Config{PerIP: 100, PerAccount: n, Window: time.Minute, Delay: time.Millisecond})
	for range n - 1 {
		l.Failed(attacker, alice, t0)
	}
	l.Succeeded(home, alice, t0)
	if v := l.Check(attacker, alice, t0); v != Allowed {
		t.Fatalf("after %d failures: Check = %v, want allowed", n-1, v)
	}
	if d := l.Failed(attacker, alice, t0); d != 16*time.Millisecond {
		t.Errorf("attacker's failure #%d after the owner's success: delay %v, want 16ms", n, d)
	}
	if v := l.Check(attacker, alice, t0); v != AccountBlocked {
		t.Errorf("after the owner's success and %d attacker failures: Check = %v, want account blocked", n, v)
	}
	if v := l.Check(home, alice, t0); v != Allowed {
		t.Errorf("owner's address: Check = %v, want allowed", v)
	}
}

// TestSuccessForgivesOnlyItsAddress: the owner's own typos are forgiven
// by their success, the attacker's failures are not.
func TestSuccessForgivesOnlyItsAddress(t *testing.T) {
	t.Parallel()
	const (
		attacker = "203.0.113.9"
		home     = "198.51.100.7"
		roaming  = "192.0.2.44"
		alice    = "alice@example.org"
	)
	l := New(Config{PerIP: 100, PerAccount: 5, Window: time.Minute, Delay: time.Millisecond})
	l.Failed(home, alice, t0)
	l.Failed(home, alice, t0)
	l.Failed(attacker, alice, t0)
	l.Failed(attacker, alice, t0)
	l.Succeeded(home, alice, t0) // count 4 → 2
	for i := range 2 {
		if v := l.Check(roaming, alice, t0); v != Allowed {
			t.Fatalf("failure %d after the success: Check = %v, want allowed", i+3, v)
		}
		l.Failed(attacker, alice, t0)
	}
	l.Succeeded(home, alice, t0) // nothing of home's left to forgive
	l.Failed(attacker, alice, t0)
	if v := l.Check(roaming, alice, t0); v != AccountBlocked {
		t.Errorf("5 attacker failures around two owner successes: Check = %v, want account blocked", v)
	}
	// A success from the attacker's address (a stolen password is
	// another matter) takes back the attacker's share.
	l.Succeeded(attacker, alice, t0)
	if v := l.Check(roaming, alice, t0); v != Allowed {
		t.Errorf("after a success from the failing address: Check = %v, want allowed", v)
	}
}

// TestStaleShareForgivesNothing: a share left from an expired count must
// not be taken off a newer one.
func TestStaleShareForgivesNothing(t *testing.T) {
	t.Parallel()
	const alice = "alice@example.org"
	l := New(Config{PerIP: 100, PerAccount: 3, Window: time.Minute, Delay: time.Millisecond})
	l.Failed("198.51.100.7", alice, t0)
	l.Failed("198.51.100.7", alice, t0)
	later := t0.Add(2 * time.Minute)
	for range 3 {
		l.Failed("203.0.113.9", alice, later)
	}
	l.Succeeded("198.51.100.7", alice, later)
	if v := l.Check("192.0.2.44", alice, later); v != AccountBlocked {
		t.Errorf("after a stale share was taken back: Check = %v, want account blocked", v)
	}
}

func TestEmptyKeysCountNothing(t *testing.T) {
	t.Parallel()
	l := New(Config{PerIP: 1, PerAccount: 1, Delay: time.Millisecond})
	l.Failed("", "alice@example.org", t0)
	l.Failed("192.0.2.1", "", t0)
	if v := l.Check("192.0.2.2", "", t0); v != Allowed {
		t.Errorf("Check with no account = %v, want allowed", v)
	}
	if v := l.Check("", "bob@example.org", t0); v != Allowed {
		t.Errorf("Check with no IP = %v, want allowed", v)
	}
	if v := l.Check("192.0.2.1", "bob@example.org", t0); v != IPBlocked {
		t.Errorf("the IP counted without an account: Check = %v, want ip blocked", v)
	}
}

// TestBoundedMemory: a flood of new addresses fills the table, then gets
// the longest delay; expired entries make room again.
func TestBoundedMemory(t *testing.T) {
	t.Parallel()
	l := New(Config{Window: time.Minute, Delay: time.Millisecond})
	l.maxEntries = 10
	for i := range 10 {
		if d := l.Failed(fmt.Sprintf("192.0.2.%d", i), "", t0); d != time.Millisecond {
			t.Fatalf("failure %d: delay %v, want 1ms", i, d)
		}
	}
	if d := l.Failed("198.51.100.1", "", t0); d != 32*time.Millisecond {
		t.Errorf("failure with a full table: delay %v, want the longest, 32ms", d)
	}
	if n := len(l.ips); n != 10 {
		t.Errorf("table holds %d entries, want at most 10", n)
	}
	later := t0.Add(2 * time.Minute)
	if d := l.Failed("198.51.100.1", "", later); d != time.Millisecond {
		t.Errorf("failure after the others expired: delay %v, want 1ms", d)
	}
	if n := len(l.ips); n != 1 {
		t.Errorf("after expiry the table holds %d entries, want 1", n)
	}
	for i := range 20 {
		l.Succeeded(fmt.Sprintf("192.0.2.%d", i), "alice@example.org", later)
	}
	for i := range 20 {
		l.Failed(fmt.Sprintf("192.0.2.%d", i), "bob@example.org", later)
	}
	if n := len(l.sources); n > 10 {
		t.Errorf("failure shares = %d, want at most 10", n)
	}
	if n := len(l.trusted); n > 10 {
		t.Errorf("trusted pairs = %d, want at most 10", n)
	}
}
