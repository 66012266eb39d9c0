package mailstore

import (
	"strings"
	"unicode"
)

// The mailstore's queries are written once, in SQLite's dialect, and run
// on PostgreSQL too: postgresSQL rewrites a query's text the first time
// the PostgreSQL driver sees it (pgdriver.go caches the result). It covers
// the differences that can be rewritten without knowing what a query
// means:
//
//   - parameters: "?" becomes "$n" (numbered in order, after the highest
//     "?NNN" so far) and "?NNN" becomes "$NNN";
//   - scalar max(a, b, …) and min(a, b, …), which PostgreSQL spells
//     GREATEST and LEAST (one argument stays the aggregate);
//   - instr(h, n) as strpos(h, n); group_concat(x[, sep]) as
//     string_agg(x::text, sep), "," by default as in SQLite;
//   - json_extract(j, '$.a.b') as (j)::jsonb #>> '{a,b}' (the text of a
//     string, the JSON of anything else, as SQLite gives), and with
//     several paths as the JSON array of their values; json_type(j,
//     '$.p') as jsonb_typeof;
//   - INSERT OR IGNORE as INSERT … ON CONFLICT DO NOTHING;
//   - INDEXED BY name, an SQLite planner hint, dropped.
//
// What differs in meaning (full-text search, PRAGMAs, the schema and its
// triggers, json_each) is chosen per backend where it is used, through
// Store.dialect.

// postgresSQL returns query in PostgreSQL's dialect.
func postgresSQL(query string) string {
	r := &rewriter{src: query}
	out := r.rewrite(query)
	if r.orIgnore {
		out = addOnConflictDoNothing(out)
	}
	return out
}

// rewriter carries the parameter numbering across the nested calls that
// rewrite function arguments.
type rewriter struct {
	src      string
	param    int  // the highest parameter number given so far
	orIgnore bool // INSERT OR IGNORE seen
}

func (r *rewriter) rewrite(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 16)
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '\'' || c == '"':
			j := skipQuoted(s, i)
			b.WriteString(s[i:j])
			i = j
		case c == '-' && i+1 < len(s) && s[i+1] == '-':
			j := strings.IndexByte(s[i:], '\n')
			if j < 0 {
				j = len(s) - i
			}
			b.WriteString(s[i : i+j])
			i += j
		case c == '?':
			j := i + 1
			for j < len(s) && s[j] >= '0' && s[j] <= '9' {
				j++
			}
			if j > i+1 {
				n := atoi(s[i+1 : j])
				r.param = max(r.param, n)
				b.WriteString("$" + s[i+1:j])
			} else {
				r.param++
				b.WriteString("$" + itoa(r.param))
			}
			i = j
		case isIdentStart(c):
			j := i
			for j < len(s) && isIdentPart(s[j]) {
				j++
			}
			word := s[i:j]
			k := j
			for k < len(s) && s[k] == ' ' {
				k++
			}
			lw := strings.ToLower(word)
			if k < len(s) && s[k] == '(' && (i == 0 || s[i-1] != '.') {
				if out, end, ok := r.function(s, lw, k); ok {
					b.WriteString(out)
					i = end
					continue
				}
			}
			switch lw {
			case "or":
				// INSERT OR IGNORE INTO: drop "OR IGNORE", add the
				// conflict clause at the end.
				if rest := strings.TrimLeft(s[j:], " "); len(rest) >= 6 && strings.EqualFold(rest[:6], "ignore") &&
					strings.HasSuffix(strings.ToUpper(strings.TrimRight(b.String(), " ")), "INSERT") {
					r.orIgnore = true
					i = len(s) - len(rest) + 6
					for i < len(s) && s[i] == ' ' {
						i++
					}
					continue
				}
			case "indexed":
				// INDEXED BY name: a hint for SQLite's planner alone.
				rest := strings.TrimLeft(s[j:], " ")
				if len(rest) >= 2 && strings.EqualFold(rest[:2], "by") {
					rest = strings.TrimLeft(rest[2:], " ")
					n := 0
					for n < len(rest) && isIdentPart(rest[n]) {
						n++
					}
					i = len(s) - len(rest) + n
					continue
				}
			}
			b.WriteString(word)
			i = j
		default:
			b.WriteByte(c)
			i++
		}
	}
	return b.String()
}

// function rewrites the call of name whose "(" is at s[open], returning
// the replacement and the index after its ")"; ok is false for a function
// that needs no rewriting (its name is then written as it is and its
// arguments rewritten in the main loop).
func (r *rewriter) function(s, name string, open int) (out string, end int, ok bool) {
	switch name {
	case "max", "min", "instr", "group_concat", "json_extract", "json_type":
	default:
		return "", 0, false
	}
	closeAt := matchParen(s, open)
	if closeAt < 0 {
		return "", 0, false
	}
	raw := splitArgs(s[open+1 : closeAt])
	if (name == "max" || name == "min") && len(raw) < 2 {
		return "", 0, false // the aggregate
	}
	args := make([]string, len(raw))
	for i, a := range raw {
		args[i] = strings.TrimSpace(r.rewrite(a))
	}
	end = closeAt + 1
	switch name {
	case "max":
		return "GREATEST(" + strings.Join(args, ", ") + ")", end, true
	case "min":
		return "LEAST(" + strings.Join(args, ", ") + ")", end, true
	case "instr":
		return "strpos(" + strings.Join(args, ", ") + ")", end, true
	case "group_concat":
		sep := "','"
		if len(args) > 1 {
			sep = args[1]
		}
		return "string_agg((" + args[0] + ")::text, " + sep + ")", end, true
	case "json_type":
		if len(args) != 2 {
			return "", 0, false
		}
		return "jsonb_typeof((" + args[0] + ")::jsonb #> " + jsonPath(args[1]) + ")", end, true
	default: // json_extract
		if len(args) == 2 {
			return "((" + args[0] + ")::jsonb #>> " + jsonPath(args[1]) + ")", end, true
		}
		parts := make([]string, 0, len(args)-1)
		for _, p := range args[1:] {
			parts = append(parts, "("+args[0]+")::jsonb #> "+jsonPath(p))
		}
		return "jsonb_build_array(" + strings.Join(parts, ", ") + ")::text", end, true
	}
}

// jsonPath turns an SQLite JSON path literal, '$.a.b', into PostgreSQL's
// text-array path, '{a,b}'. Anything else (a parameter) is left alone.
func jsonPath(lit string) string {
	lit = strings.TrimSpace(lit)
	if len(lit) < 3 || lit[0] != '\'' || lit[1] != '$' {
		return lit
	}
	p := strings.TrimPrefix(lit[2:len(lit)-1], ".")
	return "'{" + strings.ReplaceAll(p, ".", ",") + "}'"
}

// addOnConflictDoNothing appends ON CONFLICT DO NOTHING to an INSERT,
// before its RETURNING clause if it has one.
func addOnConflictDoNothing(q string) string {
	q = strings.TrimRight(q, " \t\n;")
	if i := strings.LastIndex(strings.ToUpper(q), " RETURNING "); i >= 0 {
		return q[:i] + " ON CONFLICT DO NOTHING" + q[i:]
	}
	return q + " ON CONFLICT DO NOTHING"
}

// skipQuoted returns the index after the quoted string or identifier
// starting at s[i] (a doubled quote is an escaped one).
func skipQuoted(s string, i int) int {
	q := s[i]
	for j := i + 1; j < len(s); j++ {
		if s[j] == q {
			if j+1 < len(s) && s[j+1] == q {
				j++
				continue
			}
			return j + 1
		}
	}
	return len(s)
}

// matchParen returns the index of the ")" closing the "(" at s[open], or
// -1.
func matchParen(s string, open int) int {
	depth := 0
	for i := open; i < len(s); i++ {
		switch s[i] {
		case '\'', '"':
			i = skipQuoted(s, i) - 1
		case '(':
			depth++
		case ')':
			depth--
			if depth == 0 {
				return i
			}
		}
	}
	return -1
}

// splitArgs splits a function's argument list at its top-level commas.
func splitArgs(s string) []string {
	var args []string
	depth, start := 0, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\'', '"':
			i = skipQuoted(s, i) - 1
		case '(':
			depth++
		case ')':
			depth--
		case ',':
			if depth == 0 {
				args = append(args, s[start:i])
				start = i + 1
			}
		}
	}
	if strings.TrimSpace(s) == "" && len(args) == 0 {
		return nil
	}
	return append(args, s[start:])
}

func isIdentStart(c byte) bool { return c == '_' || c < 128 && unicode.IsLetter(rune(c)) }
func isIdentPart(c byte) bool  { return isIdentStart(c) || c >= '0' && c <= '9' }

func atoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}

func itoa(n int) string {
	if n < 10 {
		return string(rune('0' + n))
	}
	return itoa(n/10) + string(rune('0'+n%10))
}
