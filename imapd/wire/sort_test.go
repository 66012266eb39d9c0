package wire

import (
	"reflect"
	"testing"
	"time"
)

func TestSortThreadArgs(t *testing.T) {
	all := SearchKey{Op: SearchAnd, Keys: []SearchKey{{Op: SearchAll}}}
	tests := []struct {
		name, input string
		want        *Command
	}{
		{"SORT RFC 5256 §4 example", "A282 SORT (SUBJECT) UTF-8 SINCE 1-Feb-1994",
			&Command{Tag: "A282", Name: "SORT", Args: &Sort{
				Criteria: []SortCriterion{{Key: SortSubject}}, Charset: "UTF-8",
				Key: SearchKey{Op: SearchAnd, Keys: []SearchKey{{Op: SearchSince, Date: time.Date(1994, 2, 1, 0, 0, 0, 0, time.UTC)}}}}}},
		{"UID SORT REVERSE, lower case", "a uid sort (reverse date size displayfrom) us-ascii ALL",
			&Command{Tag: "a", Name: "SORT", UID: true, Args: &Sort{
				Criteria: []SortCriterion{{Key: SortDate, Reverse: true}, {Key: SortSize}, {Key: SortDisplayFrom}},
				Charset:  "US-ASCII", Key: all}}},
		{"ESORT RFC 5267 §3.2", "C1 UID SORT RETURN (MIN MAX) (REVERSE DATE) UTF-8 UNDELETED UNKEYWORD $Junk",
			&Command{Tag: "C1", Name: "SORT", UID: true, Args: &Sort{
				Return:   &SearchReturn{Min: true, Max: true},
				Criteria: []SortCriterion{{Key: SortDate, Reverse: true}}, Charset: "UTF-8",
				Key: SearchKey{Op: SearchAnd, Keys: []SearchKey{{Op: SearchUndeleted}, {Op: SearchUnkeyword, Str: "$Junk"}}}}}},
		{"ESORT RETURN () is ALL", "a SORT RETURN () (ARRIVAL) UTF-8 1:5",
			&Command{Tag: "a", Name: "SORT", Args: &Sort{
				Return:   &SearchReturn{All: true},
				Criteria: []SortCriterion{{Key: SortArrival}}, Charset: "UTF-8",
				Key: SearchKey{Op: SearchAnd, Keys: []SearchKey{{Op: SearchSeq, Set: NumSet{Ranges: []NumRange{{Start: 1, Stop: 5}}}}}}}}},
		{"THREAD RFC 5256 §4 example", "A283 THREAD ORDEREDSUBJECT UTF-8 SINCE 5-MAR-2000",
			&Command{Tag: "A283", Name: "THREAD", Args: &Thread{Algorithm: "ORDEREDSUBJECT", Charset: "UTF-8",
				Key: SearchKey{Op: SearchAnd, Keys: []SearchKey{{Op: SearchSince, Date: time.Date(2000, 3, 5, 0, 0, 0, 0, time.UTC)}}}}}},
		{"UID THREAD", "a UID THREAD references utf-8 ALL",
			&Command{Tag: "a", Name: "THREAD", UID: true, Args: &Thread{Algorithm: "REFERENCES", Charset: "UTF-8", Key: all}}},
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

func TestSortThreadErrors(t *testing.T) {
	for _, input := range []string{
		"a SORT (DATE) UTF-8",        // no search key
		"a SORT (DATE) ALL",          // no charset
		"a SORT DATE UTF-8 ALL",      // criteria without parentheses
		"a SORT () UTF-8 ALL",        // empty criteria
		"a SORT (BOGUS) UTF-8 ALL",   // unknown key
		"a SORT (REVERSE) UTF-8 ALL", // REVERSE without a key
		"a SORT RETURN (BOGUS) (DATE) UTF-8 ALL",
		"a SORT RETURN (MIN) UTF-8 ALL", // RETURN without criteria
		"a THREAD REFERENCES UTF-8",
		"a THREAD",
	} {
		t.Run(input, func(t *testing.T) {
			s := newSession(t, input+"\r\nz NOOP\r\n", Limits{})
			if e := s.readErr(t); e.Tag != "a" || e.Code != ErrSyntax || e.Fatal {
				t.Errorf("error = %+v, want a syntax error for tag a", e)
			}
			if c := s.read(t); c.Tag != "z" {
				t.Errorf("next command = %+v, want z NOOP", c)
			}
		})
	}
}
