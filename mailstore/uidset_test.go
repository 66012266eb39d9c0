package mailstore

import (
	"math/rand/v2"
	"slices"
	"testing"
)

func TestUIDSetMatcher(t *testing.T) {
	cases := []struct {
		name string
		set  UIDSet
		in   []UID
		out  []UID
	}{
		{"nil is nothing", nil, nil, []UID{1, 4000000000}},
		{"empty is nothing", UIDSet{}, nil, []UID{1, 2}},
		{"AllUIDs is everything", AllUIDs(), []UID{1, 2, 4294967295}, nil},
		{"single", UIDSet{{5, 5}}, []UID{5}, []UID{4, 6}},
		{"star", UIDSet{{10, 0}}, []UID{10, 4294967295}, []UID{9}},
		{"reversed range", UIDSet{{9, 3}}, []UID{3, 9}, []UID{2, 10}},
		{"unsorted and overlapping", UIDSet{{20, 30}, {1, 2}, {25, 40}, {3, 3}}, []UID{1, 2, 3, 20, 35, 40}, []UID{4, 19, 41}},
		{"adjacent merge", UIDSet{{1, 2}, {3, 4}}, []UID{1, 2, 3, 4}, []UID{5}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.set.matcher()
			for _, u := range tc.in {
				if !in(u) {
					t.Errorf("matcher(%v)(%d) = false, want true", tc.set, u)
				}
			}
			for _, u := range tc.out {
				if in(u) {
					t.Errorf("matcher(%v)(%d) = true, want false", tc.set, u)
				}
			}
		})
	}
	// Against the plain linear Contains on random sparse sets.
	for i := 0; i < 200; i++ {
		var set UIDSet
		for j := rand.IntN(50); j >= 0; j-- {
			a := UID(rand.IntN(1000) + 1)
			set = append(set, UIDRange{a, a + UID(rand.IntN(5))})
		}
		in := set.matcher()
		for u := UID(0); u < 1100; u++ {
			if in(u) != set.Contains(u) {
				t.Fatalf("set %v, uid %d: matcher %v, Contains %v", set, u, in(u), set.Contains(u))
			}
		}
	}
}

func TestParseUIDList(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []UID
		ok   bool
	}{
		{"", nil, true},
		{"7", []UID{7}, true},
		{"1,2,4294967295", []UID{1, 2, 4294967295}, true},
		{"1,,2", nil, false},
		{"1,x", nil, false},
		{"4294967296", nil, false},
		{"1,", nil, false},
	} {
		got, err := parseUIDList(tc.in)
		if (err == nil) != tc.ok || !slices.Equal(got, tc.want) {
			t.Errorf("parseUIDList(%q) = %v, %v; want %v, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}
