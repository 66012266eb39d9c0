package imapd

import (
	"reflect"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"pushmail/mailstore"
)

// testSeqToUID maps sequence numbers of a view holding UIDs 10, 20, …, 50.
func testSeqToUID(set imap.SeqSet) mailstore.UIDSet {
	view := []mailstore.UID{10, 20, 30, 40, 50}
	var uids []mailstore.UID
	for i, uid := range view {
		seq := uint32(i + 1)
		for _, r := range set {
			start, stop := r.Start, r.Stop
			if start == 0 {
				start = uint32(len(view))
			}
			if stop == 0 {
				stop = uint32(len(view))
			}
			if start > stop {
				start, stop = stop, start
			}
			if seq >= start && seq <= stop {
				uids = append(uids, uid)
				break
			}
		}
	}
	out := mailstore.UIDSet{}
	for _, u := range uids {
		out = append(out, mailstore.UIDRange{Start: u, Stop: u})
	}
	return out
}

func TestStoreCriteria(t *testing.T) {
	t.Parallel()
	day := time.Date(2024, time.March, 10, 0, 0, 0, 0, time.UTC) // as go-imap parses "10-Mar-2024"
	tests := []struct {
		name string
		in   imap.SearchCriteria
		want mailstore.SearchCriteria
	}{
		{name: "all", in: imap.SearchCriteria{}, want: mailstore.SearchCriteria{}},
		{
			name: "seqnum",
			in:   imap.SearchCriteria{SeqNum: []imap.SeqSet{{{Start: 2, Stop: 3}}, {{Start: 5, Stop: 0}}}},
			want: mailstore.SearchCriteria{UIDs: []mailstore.UIDSet{
				{{Start: 20, Stop: 20}, {Start: 30, Stop: 30}},
				{{Start: 50, Stop: 50}},
			}},
		},
		{
			name: "seqnum outside the view matches nothing",
			in:   imap.SearchCriteria{SeqNum: []imap.SeqSet{imap.SeqSetNum(9)}},
			want: mailstore.SearchCriteria{UIDs: []mailstore.UIDSet{{}}},
		},
		{
			name: "uid star is the view's last uid",
			in:   imap.SearchCriteria{UID: []imap.UIDSet{{{Start: 1, Stop: 4}, {Start: 7, Stop: 0}}, imap.UIDSetNum(0)}},
			want: mailstore.SearchCriteria{UIDs: []mailstore.UIDSet{
				{{Start: 1, Stop: 4}, {Start: 7, Stop: 50}},
				{{Start: 50, Stop: 50}},
			}},
		},
		{
			name: "uid n:star above the last uid includes it",
			in:   imap.SearchCriteria{UID: []imap.UIDSet{{{Start: 559, Stop: 0}}}},
			want: mailstore.SearchCriteria{UIDs: []mailstore.UIDSet{{{Start: 50, Stop: 559}}}},
		},
		{
			name: "uid star in not",
			in:   imap.SearchCriteria{Not: []imap.SearchCriteria{{UID: []imap.UIDSet{imap.UIDSetNum(0)}}}},
			want: mailstore.SearchCriteria{Not: []mailstore.SearchCriteria{{UIDs: []mailstore.UIDSet{{{Start: 50, Stop: 50}}}}}},
		},
		{
			name: "saved result without a save is empty",
			in:   imap.SearchCriteria{UID: []imap.UIDSet{imap.SearchRes()}},
			want: mailstore.SearchCriteria{UIDs: []mailstore.UIDSet{{}}},
		},
		{
			name: "header fields",
			in: imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{
				{Key: "From", Value: "alice"},
				{Key: "Subject", Value: "Grüße"},
				{Key: "X-Spam", Value: ""},
			}},
			// FROM, TO, CC, BCC also match the envelope (RFC 9051 §6.4.4).
			want: mailstore.SearchCriteria{
				Header: []mailstore.HeaderMatch{
					{Key: "Subject", Value: "Grüße"},
					{Key: "X-Spam", Value: ""},
				},
				Address: []mailstore.HeaderMatch{{Key: "From", Value: "alice"}},
			},
		},
		{
			name: "body and text",
			in:   imap.SearchCriteria{Body: []string{"hello", "world"}, Text: []string{"x"}},
			want: mailstore.SearchCriteria{Body: []string{"hello", "world"}, Text: []string{"x"}},
		},
		{
			name: "flags and keywords",
			in: imap.SearchCriteria{
				Flag:    []imap.Flag{imap.FlagFlagged, "$Important"},
				NotFlag: []imap.Flag{imap.FlagSeen, imap.FlagDeleted},
			},
			want: mailstore.SearchCriteria{
				Flag:    []string{`\Flagged`, "$Important"},
				NotFlag: []string{`\Seen`, `\Deleted`},
			},
		},
		{
			name: "recent passes through",
			in:   imap.SearchCriteria{Flag: []imap.Flag{`\Recent`}},
			want: mailstore.SearchCriteria{Flag: []string{`\Recent`}},
		},
		{
			name: "sizes",
			in:   imap.SearchCriteria{Larger: 100, Smaller: 5000},
			want: mailstore.SearchCriteria{Larger: 100, Smaller: 5000},
		},
		{
			name: "modseq ignores the entry name",
			in: imap.SearchCriteria{ModSeq: &imap.SearchCriteriaModSeq{
				ModSeq: 42, MetadataName: "/flags/\\draft", MetadataType: imap.SearchCriteriaMetadataPrivate,
			}},
			want: mailstore.SearchCriteria{ModSeq: 42},
		},
		{
			name: "sent dates keep the calendar date",
			in:   imap.SearchCriteria{SentSince: day, SentBefore: day.Add(24 * time.Hour)},
			want: mailstore.SearchCriteria{
				SentSince:  time.Date(2024, time.March, 10, 0, 0, 0, 0, time.UTC),
				SentBefore: time.Date(2024, time.March, 11, 0, 0, 0, 0, time.UTC),
			},
		},
		{
			name: "not and or nest",
			in: imap.SearchCriteria{
				Not: []imap.SearchCriteria{{
					Flag: []imap.Flag{imap.FlagSeen},
					Or: [][2]imap.SearchCriteria{{
						{SeqNum: []imap.SeqSet{imap.SeqSetNum(1)}},
						{Not: []imap.SearchCriteria{{Body: []string{"x"}}}},
					}},
				}},
				Or: [][2]imap.SearchCriteria{{
					{Header: []imap.SearchCriteriaHeaderField{{Key: "To", Value: "bob"}}},
					{Larger: 10},
				}},
			},
			want: mailstore.SearchCriteria{
				Not: []mailstore.SearchCriteria{{
					Flag: []string{`\Seen`},
					Or: [][2]mailstore.SearchCriteria{{
						{UIDs: []mailstore.UIDSet{{{Start: 10, Stop: 10}}}},
						{Not: []mailstore.SearchCriteria{{Body: []string{"x"}}}},
					}},
				}},
				Or: [][2]mailstore.SearchCriteria{{
					{Address: []mailstore.HeaderMatch{{Key: "To", Value: "bob"}}},
					{Larger: 10},
				}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := storeCriteria(&tt.in, testSeqToUID)
			if err != nil {
				t.Fatalf("storeCriteria(%+v) = %v", tt.in, err)
			}
			if !reflect.DeepEqual(*got, tt.want) {
				t.Errorf("storeCriteria(%+v) = %+v, want %+v", tt.in, *got, tt.want)
			}
		})
	}
}

func TestStoreCriteriaInternalDates(t *testing.T) {
	t.Parallel()
	// go-imap parses "10-Mar-2024" as midnight UTC; ON adds 24 hours.
	day := time.Date(2024, time.March, 10, 0, 0, 0, 0, time.UTC)
	tokyo := time.FixedZone("JST", 9*3600)
	newYork := time.FixedZone("EST", -5*3600)
	tests := []struct {
		name          string
		loc           *time.Location
		in            imap.SearchCriteria
		since, before time.Time
	}{
		{
			name:  "since in UTC",
			loc:   time.UTC,
			in:    imap.SearchCriteria{Since: day},
			since: time.Date(2024, time.March, 10, 0, 0, 0, 0, time.UTC),
		},
		{
			name:   "before east of UTC",
			loc:    tokyo,
			in:     imap.SearchCriteria{Before: day},
			before: time.Date(2024, time.March, 10, 0, 0, 0, 0, tokyo),
		},
		{
			name:   "on west of UTC",
			loc:    newYork,
			in:     imap.SearchCriteria{Since: day, Before: day.Add(24 * time.Hour)},
			since:  time.Date(2024, time.March, 10, 0, 0, 0, 0, newYork),
			before: time.Date(2024, time.March, 11, 0, 0, 0, 0, newYork),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cv := &criteriaConverter{loc: tt.loc}
			got, err := cv.convert(&tt.in)
			if err != nil {
				t.Fatalf("convert(%+v) = %v", tt.in, err)
			}
			if !got.Since.Equal(tt.since) || !got.Before.Equal(tt.before) {
				t.Errorf("convert(%+v) = since %v before %v, want since %v before %v",
					tt.in, got.Since, got.Before, tt.since, tt.before)
			}
		})
	}
}

func TestStoreCriteriaLocalZone(t *testing.T) {
	t.Parallel()
	day := time.Date(2024, time.March, 10, 0, 0, 0, 0, time.UTC)
	got, err := storeCriteria(&imap.SearchCriteria{Since: day}, testSeqToUID)
	if err != nil {
		t.Fatalf("storeCriteria() = %v", err)
	}
	want := time.Date(2024, time.March, 10, 0, 0, 0, 0, time.Local)
	if !got.Since.Equal(want) {
		t.Errorf("storeCriteria(SINCE 10-Mar-2024).Since = %v, want %v", got.Since, want)
	}
}

func TestStoreCriteriaSaved(t *testing.T) {
	t.Parallel()
	saved := mailstore.UIDSet{{Start: 3, Stop: 5}}
	in := &imap.SearchCriteria{
		UID: []imap.UIDSet{imap.SearchRes()},
		Not: []imap.SearchCriteria{{UID: []imap.UIDSet{imap.SearchRes()}}},
	}
	got, err := storeCriteriaSaved(in, testSeqToUID, saved)
	if err != nil {
		t.Fatalf("storeCriteriaSaved() = %v", err)
	}
	want := mailstore.SearchCriteria{
		UIDs: []mailstore.UIDSet{saved},
		Not:  []mailstore.SearchCriteria{{UIDs: []mailstore.UIDSet{saved}}},
	}
	if !reflect.DeepEqual(*got, want) {
		t.Errorf("storeCriteriaSaved($) = %+v, want %+v", *got, want)
	}
}

func TestStoreCriteriaEmptyView(t *testing.T) {
	t.Parallel()
	empty := func(imap.SeqSet) mailstore.UIDSet { return nil }
	in := &imap.SearchCriteria{UID: []imap.UIDSet{{{Start: 5, Stop: 0}}, imap.UIDSetNum(0)}}
	got, err := storeCriteria(in, empty)
	if err != nil {
		t.Fatalf("storeCriteria() = %v", err)
	}
	// "*" is left to the store, which finds no message the view has.
	want := []mailstore.UIDSet{{{Start: 5, Stop: 0}}, {{Start: 0, Stop: 0}}}
	if !reflect.DeepEqual(got.UIDs, want) {
		t.Errorf("storeCriteria(UID 5:* UID *) with an empty view = %v, want %v", got.UIDs, want)
	}
}

func TestStoreCriteriaWithoutSeqMap(t *testing.T) {
	t.Parallel()
	in := &imap.SearchCriteria{Or: [][2]imap.SearchCriteria{{{SeqNum: []imap.SeqSet{imap.SeqSetNum(1)}}, {}}}}
	if _, err := storeCriteria(in, nil); err == nil {
		t.Errorf("storeCriteria(seqnum, nil map) = nil error, want one")
	}
}
