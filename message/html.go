package message

import (
	"bytes"
	"unicode/utf8"

	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

// HTMLText reduces an HTML document (a decoded text/html body) to the text
// a reader sees, for search: tags are dropped without a space, so that a
// word split by inline markup ("hel<b>lo</b>") stays one word; block
// elements and line breaks become a line break; character references are
// decoded; the contents of script, style and template elements and
// comments are dropped; and runs of white space (the no-break space
// included) become one space, as a browser renders them (CSS 2.1 §16.6.1
// with the initial 'white-space: normal'). It never fails: malformed markup
// yields what the tokenizer recovers (HTML Living Standard §13.2.5). Bytes
// that are not UTF-8 become U+FFFD.
func HTMLText(b []byte) []byte {
	z := html.NewTokenizer(bytes.NewReader(b))
	out := make([]byte, 0, len(b)/2)
	space, lineBreak := false, false // separators pending before the next text
	hidden := 0                      // depth inside elements whose text is not shown
	for {
		tt := z.Next()
		switch tt {
		case html.ErrorToken:
			return out // io.EOF: a bytes.Reader fails no other way
		case html.TextToken:
			if hidden > 0 {
				continue
			}
			for text := z.Text(); len(text) > 0; {
				r, n := utf8.DecodeRune(text)
				text = text[n:]
				if isHTMLSpace(r) {
					space = true
					continue
				}
				if len(out) > 0 {
					switch {
					case lineBreak:
						out = append(out, '\n')
					case space:
						out = append(out, ' ')
					}
				}
				space, lineBreak = false, false
				out = utf8.AppendRune(out, r)
			}
		case html.StartTagToken, html.SelfClosingTagToken, html.EndTagToken:
			name, _ := z.TagName()
			a := atom.Lookup(name)
			switch {
			case hiddenElement(a):
				if tt == html.StartTagToken {
					hidden++
				} else if tt == html.EndTagToken && hidden > 0 {
					hidden--
				}
			case blockElement(a):
				lineBreak = true
			}
		}
	}
}

// isHTMLSpace reports whether r is white space that HTML rendering
// collapses: ASCII white space (HTML Living Standard §2.3.1) and the
// no-break space, which a reader cannot tell from a space and types as one.
func isHTMLSpace(r rune) bool {
	switch r {
	case ' ', '\t', '\n', '\r', '\f', '\u00a0':
		return true
	}
	return false
}

// hiddenElement reports whether an element's text is never shown.
func hiddenElement(a atom.Atom) bool {
	switch a {
	case atom.Script, atom.Style, atom.Template:
		return true
	}
	return false
}

// blockElement reports whether an element starts a new line when
// rendered, so that the words either side of it are not one word.
func blockElement(a atom.Atom) bool {
	switch a {
	case atom.Address, atom.Article, atom.Aside, atom.Blockquote, atom.Br, atom.Dd, atom.Div, atom.Dl, atom.Dt,
		atom.Fieldset, atom.Figcaption, atom.Figure, atom.Footer, atom.Form, atom.H1, atom.H2, atom.H3, atom.H4,
		atom.H5, atom.H6, atom.Header, atom.Hr, atom.Li, atom.Main, atom.Nav, atom.Ol, atom.P, atom.Pre,
		atom.Section, atom.Table, atom.Tbody, atom.Td, atom.Th, atom.Thead, atom.Title, atom.Tr, atom.Ul,
		atom.Body, atom.Html, atom.Head, atom.Option, atom.Caption, atom.Tfoot:
		return true
	}
	return false
}
