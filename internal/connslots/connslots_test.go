package connslots

import (
	"math/rand/v2"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)

func at(i int) time.Time { return t0.Add(time.Duration(i) * time.Second) }

// A key at MaxPerKey is refused; other keys are not affected.
func TestPerKey(t *testing.T) {
	tb := New[int](Limits{MaxConns: 10, MaxPerKey: 2})
	for i := range 2 {
		if _, _, r := tb.Admit(i, "a", at(i)); r != Admitted {
			t.Fatalf("Admit(%d) = %v", i, r)
		}
	}
	if _, _, r := tb.Admit(2, "a", at(2)); r != TooManyFromKey {
		t.Errorf("third from a = %v, want TooManyFromKey", r)
	}
	if _, _, r := tb.Admit(3, "b", at(3)); r != Admitted {
		t.Errorf("first from b = %v, want Admitted", r)
	}
	tb.Release(0)
	if _, _, r := tb.Admit(4, "a", at(4)); r != Admitted {
		t.Errorf("a after a release = %v, want Admitted", r)
	}
}

// A full table evicts the oldest connection not logged in; when all
// have logged in, it refuses.
func TestEvictOldestPreAuth(t *testing.T) {
	tb := New[int](Limits{MaxConns: 3})
	for i := range 3 {
		tb.Admit(i, "k", at(10-i)) // 2 is the oldest
	}
	if !tb.LoggedIn(2) {
		t.Fatal("LoggedIn(2) = false")
	}
	victim, evicted, r := tb.Admit(3, "k", at(20))
	if r != Admitted || !evicted || victim != 1 {
		t.Errorf("Admit on a full table = %d, %v, %v; want 1 evicted (the oldest not logged in)", victim, evicted, r)
	}
	if tb.Holds(1) || tb.LoggedIn(1) {
		t.Error("the evicted connection still holds a slot, or may log in")
	}
	tb.LoggedIn(0)
	tb.LoggedIn(3)
	if _, _, r := tb.Admit(4, "k", at(21)); r != Full {
		t.Errorf("Admit with every holder logged in = %v, want Full", r)
	}
}

// MaxPreAuth bounds the connections not logged in below MaxConns.
func TestMaxPreAuth(t *testing.T) {
	tb := New[int](Limits{MaxConns: 10, MaxPreAuth: 2})
	tb.Admit(0, "k", at(0))
	tb.Admit(1, "k", at(1))
	if victim, evicted, r := tb.Admit(2, "k", at(2)); r != Admitted || !evicted || victim != 0 {
		t.Errorf("third not logged in = %d, %v, %v; want 0 evicted", victim, evicted, r)
	}
	tb.LoggedIn(1)
	tb.LoggedIn(2)
	if _, evicted, r := tb.Admit(3, "k", at(3)); r != Admitted || evicted {
		t.Errorf("after logins = %v, %v; want admitted without eviction", evicted, r)
	}
}

// Random admits, logins and releases never leave the counts wrong: the
// table agrees with a plain model at every step.
func TestModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	lim := Limits{MaxConns: 6, MaxPerKey: 3, MaxPreAuth: 4}
	tb := New[int](lim)
	type conn struct {
		key      string
		start    int
		loggedIn bool
	}
	model := map[int]*conn{}
	keys := []string{"a", "b", "c"}
	for step := range 5000 {
		switch op := rng.IntN(3); {
		case op == 0:
			c, key := step, keys[rng.IntN(len(keys))]
			perKey, pre := 0, 0
			for _, m := range model {
				if m.key == key {
					perKey++
				}
				if !m.loggedIn {
					pre++
				}
			}
			want, wantVictim := Admitted, -1
			if perKey >= lim.MaxPerKey {
				want = TooManyFromKey
			} else if len(model) >= lim.MaxConns || pre >= lim.MaxPreAuth {
				want = Full
				for id, m := range model {
					if !m.loggedIn && (wantVictim < 0 || m.start < model[wantVictim].start) {
						wantVictim = id
					}
				}
				if wantVictim >= 0 {
					want = Admitted
				}
			}
			victim, evicted, r := tb.Admit(c, key, at(step))
			if r != want || evicted != (wantVictim >= 0) || evicted && victim != wantVictim {
				t.Fatalf("step %d: Admit = %d, %v, %v; want victim %d, %v", step, victim, evicted, r, wantVictim, want)
			}
			if evicted {
				delete(model, victim)
			}
			if r == Admitted {
				model[c] = &conn{key: key, start: step}
			}
		case op == 1 && len(model) > 0:
			for id, m := range model {
				if !tb.LoggedIn(id) {
					t.Fatalf("step %d: LoggedIn(%d) = false for a holder", step, id)
				}
				m.loggedIn = true
				break
			}
		case op == 2 && len(model) > 0:
			for id := range model {
				tb.Release(id)
				tb.Release(id) // idempotent
				delete(model, id)
				break
			}
		}
		if len(tb.holders) != len(model) {
			t.Fatalf("step %d: %d holders, model %d", step, len(tb.holders), len(model))
		}
	}
}
