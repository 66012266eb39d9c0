package imapd

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"pushmail/imapd/wire"
	"pushmail/mailstore"
	"pushmail/notify"
)

// recorder is an updater that writes responses as text.
type recorder struct{ out []string }

func (r *recorder) WriteExpunge(seq uint32) error {
	r.out = append(r.out, fmt.Sprintf("* %d EXPUNGE", seq))
	return nil
}

func (r *recorder) WriteNumMessages(n uint32) error {
	r.out = append(r.out, fmt.Sprintf("* %d EXISTS", n))
	return nil
}

func (r *recorder) Flush() error { return nil }

func (r *recorder) WriteRecent(n uint32) error {
	r.out = append(r.out, fmt.Sprintf("* %d RECENT", n))
	return nil
}

func (r *recorder) WriteVanished(uids []mailstore.UID) error {
	r.out = append(r.out, fmt.Sprintf("* VANISHED %s", uidList(uids)))
	return nil
}

func (r *recorder) WriteMessageFlags(seq uint32, uid mailstore.UID, flags []string, _ uint64) error {
	r.out = append(r.out, fmt.Sprintf("* %d FETCH (UID %d FLAGS %v)", seq, uid, flags))
	return nil
}

// newTestView returns a view of UIDs with a subscription on hub.
func newTestView(hub *notify.Hub, modseq uint64, uids ...mailstore.UID) *selected {
	sel := &selected{
		sub:      hub.Subscribe(1),
		uids:     uids,
		gone:     map[mailstore.UID]bool{},
		reported: map[mailstore.UID]uint64{},
		modseq:   modseq,
	}
	if len(uids) > 0 {
		sel.known = uids[len(uids)-1]
	}
	return sel
}

func TestViewUpdate(t *testing.T) {
	t.Parallel()
	const self = 1 // the first subscription of a fresh hub
	flags := func(uid uint32, f ...string) notify.FlagUpdate { return notify.FlagUpdate{UID: uid, Flags: f} }
	tests := []struct {
		name     string
		events   []notify.Event
		reported map[mailstore.UID]uint64
		allow    bool
		want     []string
		wantView []mailstore.UID
	}{
		{
			name:     "append",
			events:   []notify.Event{{Kind: notify.Appended, UIDs: []uint32{4, 5}, ModSeq: 11}},
			allow:    true,
			want:     []string{"* 5 EXISTS"},
			wantView: []mailstore.UID{1, 2, 3, 4, 5},
		},
		{
			name: "append already in view or older",
			events: []notify.Event{
				{Kind: notify.Appended, UIDs: []uint32{2, 3}, ModSeq: 11},
			},
			allow:    true,
			want:     nil,
			wantView: []mailstore.UID{1, 2, 3},
		},
		{
			name:     "expunge numbers shift",
			events:   []notify.Event{{Kind: notify.Expunged, UIDs: []uint32{1, 3}, ModSeq: 11}},
			allow:    true,
			want:     []string{"* 1 EXPUNGE", "* 2 EXPUNGE"},
			wantView: []mailstore.UID{2},
		},
		{
			name: "expunge deferred keeps numbers",
			events: []notify.Event{
				{Kind: notify.Expunged, UIDs: []uint32{1}, ModSeq: 11},
				{Kind: notify.Appended, UIDs: []uint32{4}, ModSeq: 12},
				{Kind: notify.FlagsChanged, Flags: []notify.FlagUpdate{flags(1, `\Seen`), flags(2, `\Seen`)}, ModSeq: 13},
			},
			allow:    false,
			want:     []string{"* 4 EXISTS", "* 2 FETCH (UID 2 FLAGS [\\Seen])"},
			wantView: []mailstore.UID{1, 2, 3, 4},
		},
		{
			name:     "expunge of unknown UID",
			events:   []notify.Event{{Kind: notify.Expunged, UIDs: []uint32{9}, ModSeq: 11}},
			allow:    true,
			wantView: []mailstore.UID{1, 2, 3},
		},
		{
			name:     "own flag change",
			events:   []notify.Event{{Kind: notify.FlagsChanged, Flags: []notify.FlagUpdate{flags(2, `\Seen`)}, ModSeq: 11, Origin: self}},
			allow:    true,
			wantView: []mailstore.UID{1, 2, 3},
		},
		{
			name:     "flag change older than the reported flags",
			events:   []notify.Event{{Kind: notify.FlagsChanged, Flags: []notify.FlagUpdate{flags(2, `\Seen`), flags(3, `\Draft`)}, ModSeq: 11}},
			reported: map[mailstore.UID]uint64{2: 12},
			allow:    true,
			want:     []string{"* 3 FETCH (UID 3 FLAGS [\\Draft])"},
			wantView: []mailstore.UID{1, 2, 3},
		},
		{
			name:     "flag change from before SELECT",
			events:   []notify.Event{{Kind: notify.FlagsChanged, Flags: []notify.FlagUpdate{flags(2, `\Seen`)}, ModSeq: 10}},
			allow:    true,
			wantView: []mailstore.UID{1, 2, 3},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hub := notify.New(0)
			sel := newTestView(hub, 10, 1, 2, 3)
			if sel.sub.ID() != self {
				t.Fatalf("subscription ID %d, want %d", sel.sub.ID(), self)
			}
			for k, v := range tt.reported {
				sel.reported[k] = v
			}
			for _, ev := range tt.events {
				ev.Mailbox = 1
				hub.Publish(ev)
			}
			var r recorder
			if err := sel.update(context.Background(), nil, &r, tt.allow); err != nil {
				t.Fatalf("update() = %v", err)
			}
			if !slices.Equal(r.out, tt.want) {
				t.Errorf("responses = %q, want %q", r.out, tt.want)
			}
			if !slices.Equal(sel.uids, tt.wantView) {
				t.Errorf("view = %v, want %v", sel.uids, tt.wantView)
			}
			if !tt.allow {
				r.out = nil
				if err := sel.update(context.Background(), nil, &r, true); err != nil {
					t.Fatal(err)
				}
				if len(sel.gone) != 0 || len(r.out) == 0 {
					t.Errorf("deferred expunges not sent when allowed: %q, gone %v", r.out, sel.gone)
				}
			}
		})
	}
}

func TestResolve(t *testing.T) {
	t.Parallel()
	sel := &selected{uids: []mailstore.UID{3, 5, 6, 9}}
	tests := []struct {
		name    string
		set     wire.NumSet
		byUID   bool
		want    []msgRef
		wantErr bool
	}{
		{"seq", nums(2, 2, 4, 4), false, []msgRef{{2, 5}, {4, 9}}, false},
		{"seq star", nums(0, 0), false, []msgRef{{4, 9}}, false},
		{"seq n:*", nums(3, 0), false, []msgRef{{3, 6}, {4, 9}}, false},
		{"seq *:n", nums(0, 3), false, []msgRef{{3, 6}, {4, 9}}, false},
		{"seq n:* beyond", nums(7, 0), false, []msgRef{{4, 9}}, false},
		{"seq reversed", nums(4, 3), false, []msgRef{{3, 6}, {4, 9}}, false},
		{"seq out of range", nums(5, 5), false, nil, true},
		{"uid", nums(5, 5, 7, 7, 9, 9), true, []msgRef{{2, 5}, {4, 9}}, false},
		{"uid range", nums(4, 6), true, []msgRef{{2, 5}, {3, 6}}, false},
		{"uid star", nums(0, 0), true, []msgRef{{4, 9}}, false},
		// RFC 9051 §6.4.9: "559:*" includes the last message.
		{"uid n:* beyond", nums(100, 0), true, []msgRef{{4, 9}}, false},
		{"uid none", nums(4, 4, 100, 100), true, nil, false},
	}
	for _, tt := range tests {
		got, err := sel.resolve(tt.set, tt.byUID)
		if (err != nil) != tt.wantErr || !slices.Equal(got, tt.want) {
			t.Errorf("%s: resolve(%v) = %v, %v, want %v (error %v)", tt.name, tt.set, got, err, tt.want, tt.wantErr)
		}
	}
	empty := &selected{}
	if got, err := empty.resolve(nums(1, 0), false); err != nil || len(got) != 0 {
		t.Errorf("resolve(1:*) on an empty view = %v, %v, want nothing", got, err)
	}
}

// nums builds a set from start, stop pairs (0 is "*").
func nums(pairs ...uint32) wire.NumSet {
	var s wire.NumSet
	for i := 0; i+1 < len(pairs); i += 2 {
		s.Ranges = append(s.Ranges, wire.NumRange{Start: pairs[i], Stop: pairs[i+1]})
	}
	return s
}

// Overlapping ranges are merged before they are expanded: the indexes
// come out ascending and once, however many times a range repeats.
func TestExpandRanges(t *testing.T) {
	iv := []indexRange{{5, 7}, {0, 2}, {1, 6}, {9, 9}}
	for range 1000 {
		iv = append(iv, indexRange{0, 9})
	}
	if got := expandRanges(iv); !slices.Equal(got, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}) {
		t.Errorf("expandRanges = %v", got)
	}
	if got := expandRanges([]indexRange{{3, 4}, {0, 0}}); !slices.Equal(got, []int{0, 3, 4}) {
		t.Errorf("expandRanges with a gap = %v", got)
	}
}
