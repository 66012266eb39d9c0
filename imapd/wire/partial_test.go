package wire

import (
	"reflect"
	"strings"
	"testing"
)

func TestPartialArgs(t *testing.T) {
	all := SearchKey{Op: SearchAnd, Keys: []SearchKey{{Op: SearchAll}}}
	tests := []struct {
		name, input string
		want        *Command
	}{
		{"RFC 9394 §3.1 example", "A01 UID SEARCH RETURN (PARTIAL 1:500) UNDELETED",
			&Command{Tag: "A01", Name: "SEARCH", UID: true, Args: &Search{
				Return: &SearchReturn{Partial: &PartialRange{First: 1, Last: 500}},
				Key:    SearchKey{Op: SearchAnd, Keys: []SearchKey{{Op: SearchUndeleted}}}}}},
		{"from the end, with COUNT, lower case", "a search return (count partial -1:-100) ALL",
			&Command{Tag: "a", Name: "SEARCH", Args: &Search{
				Return: &SearchReturn{Count: true, Partial: &PartialRange{First: 1, Last: 100, FromEnd: true}}, Key: all}}},
		{"reversed range kept as written", "a SEARCH RETURN (MIN PARTIAL 500:400 MAX SAVE) ALL",
			&Command{Tag: "a", Name: "SEARCH", Args: &Search{
				Return: &SearchReturn{Min: true, Max: true, Save: true, Partial: &PartialRange{First: 500, Last: 400}}, Key: all}}},
		{"largest positions", "a SEARCH RETURN (PARTIAL -4294967295:-4294967295) ALL",
			&Command{Tag: "a", Name: "SEARCH", Args: &Search{
				Return: &SearchReturn{Partial: &PartialRange{First: 4294967295, Last: 4294967295, FromEnd: true}}, Key: all}}},
		{"UID SORT RFC 9394 §3.1", "a UID SORT RETURN (PARTIAL 23:40) (DATE) UTF-8 ALL",
			&Command{Tag: "a", Name: "SORT", UID: true, Args: &Sort{
				Return:   &SearchReturn{Partial: &PartialRange{First: 23, Last: 40}},
				Criteria: []SortCriterion{{Key: SortDate}}, Charset: "UTF-8", Key: all}}},
		{"UID FETCH PARTIAL RFC 9394 §3.2", "a UID FETCH 1:* (FLAGS) (PARTIAL -1:-30)",
			&Command{Tag: "a", Name: "FETCH", UID: true, Args: &Fetch{
				Set:     NumSet{Ranges: []NumRange{{Start: 1, Stop: 0}}},
				Attrs:   []FetchAttr{{Kind: FetchFlags}},
				Partial: &PartialRange{First: 1, Last: 30, FromEnd: true}}}},
		{"UID FETCH PARTIAL with CHANGEDSINCE", "a UID FETCH 1:* (FLAGS) (CHANGEDSINCE 12345 PARTIAL 1:10)",
			&Command{Tag: "a", Name: "FETCH", UID: true, Args: &Fetch{
				Set:             NumSet{Ranges: []NumRange{{Start: 1, Stop: 0}}},
				Attrs:           []FetchAttr{{Kind: FetchFlags}},
				HasChangedSince: true, ChangedSince: 12345,
				Partial: &PartialRange{First: 1, Last: 10}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSession(t, tt.input+"\r\n", Limits{})
			got := s.read(t)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ReadCommand(%q) = %+v %+v, want %+v %+v", tt.input, got, got.Args, tt.want, tt.want.Args)
			}
			s.eof(t)
		})
	}
}

func TestPartialErrors(t *testing.T) {
	tests := []struct{ input, text string }{
		{"a SEARCH RETURN (PARTIAL 0:10) ALL", "start at 1"},
		{"a SEARCH RETURN (PARTIAL -0:-10) ALL", "start at 1"},
		{"a SEARCH RETURN (PARTIAL 01:10) ALL", "start at 1"},
		{"a SEARCH RETURN (PARTIAL 1:-10) ALL", "both ends"},
		{"a SEARCH RETURN (PARTIAL -1:10) ALL", "both ends"},
		{"a SEARCH RETURN (PARTIAL 1:4294967296) ALL", "above 4294967295"},
		{"a SEARCH RETURN (PARTIAL 1:99999999999999999999999) ALL", "above 4294967295"},
		{"a SEARCH RETURN (PARTIAL 5) ALL", "not a range"},
		{"a SEARCH RETURN (PARTIAL 1:2:3) ALL", "more than one colon"},
		{"a SEARCH RETURN (PARTIAL 1:*) ALL", "PARTIAL"},
		{"a SEARCH RETURN (PARTIAL :5) ALL", "missing"},
		{"a SEARCH RETURN (PARTIAL 1:x) ALL", "numbers"},
		{"a SEARCH RETURN (PARTIAL --1:-2) ALL", "numbers"},
		{"a SEARCH RETURN (PARTIAL) ALL", ""},
		{"a SEARCH RETURN (PARTIAL 1:5 PARTIAL 6:9) ALL", "twice"},
		{"a SEARCH RETURN (ALL PARTIAL 1:5) ALL", "ALL"},
		{"a SEARCH RETURN (PARTIAL 1:5 ALL) ALL", "ALL"},
		{"a SORT RETURN (PARTIAL 1:5 ALL) (DATE) UTF-8 ALL", "ALL"},
		{"a UID FETCH 1:* (FLAGS) (PARTIAL 0:1)", "start at 1"},
		{"a UID FETCH 1:* (FLAGS) (PARTIAL 1:2 PARTIAL 3:4)", "twice"},
	}
	for _, tt := range tests {
		t.Run(tt.input, func(t *testing.T) {
			s := newSession(t, tt.input+"\r\nz NOOP\r\n", Limits{})
			e := s.readErr(t)
			if e.Tag != "a" || e.Code != ErrSyntax || e.Fatal {
				t.Errorf("error = %+v, want a syntax error for tag a", e)
			}
			if !strings.Contains(e.Error(), tt.text) {
				t.Errorf("error = %q, want it to say %q", e.Error(), tt.text)
			}
			if c := s.read(t); c.Tag != "z" {
				t.Errorf("next command = %+v, want z NOOP", c)
			}
		})
	}
}

func TestPartialRangeIndexes(t *testing.T) {
	tests := []struct {
		name   string
		r      PartialRange
		n      int
		lo, hi int
	}{
		{"first page", PartialRange{First: 1, Last: 100}, 250, 0, 100},
		{"second page", PartialRange{First: 101, Last: 200}, 250, 100, 200},
		{"short last page", PartialRange{First: 201, Last: 300}, 250, 200, 250},
		{"beyond the end", PartialRange{First: 251, Last: 300}, 250, 0, 0},
		{"reversed", PartialRange{First: 200, Last: 101}, 250, 100, 200},
		{"last hundred", PartialRange{First: 1, Last: 100, FromEnd: true}, 250, 150, 250},
		{"last hundred reversed", PartialRange{First: 100, Last: 1, FromEnd: true}, 250, 150, 250},
		{"before the last hundred", PartialRange{First: 101, Last: 200, FromEnd: true}, 250, 50, 150},
		{"from the end past the start", PartialRange{First: 201, Last: 300, FromEnd: true}, 250, 0, 50},
		{"from the end wholly past the start", PartialRange{First: 251, Last: 300, FromEnd: true}, 250, 0, 0},
		{"last one", PartialRange{First: 1, Last: 1, FromEnd: true}, 3, 2, 3},
		{"empty result", PartialRange{First: 1, Last: 10}, 0, 0, 0},
		{"empty result from the end", PartialRange{First: 1, Last: 10, FromEnd: true}, 0, 0, 0},
		{"largest positions", PartialRange{First: 1, Last: 4294967295}, 5, 0, 5},
		{"largest positions from the end", PartialRange{First: 4294967295, Last: 4294967295, FromEnd: true}, 5, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if lo, hi := tt.r.Indexes(tt.n); lo != tt.lo || hi != tt.hi {
				t.Errorf("%v.Indexes(%d) = %d, %d, want %d, %d", tt.r, tt.n, lo, hi, tt.lo, tt.hi)
			}
		})
	}
}
