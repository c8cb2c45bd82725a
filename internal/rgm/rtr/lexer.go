// Package rtr reads Resource Type Registration files, the rt_reg(4)
// format in which Sun Cluster data services describe their resource type:
// resource-type properties (RESOURCE_TYPE first, method paths, ...), then,
// optionally after #$upgrade directives, property declarations in braces.
//
// Parse returns the file as written, with positions; it checks the grammar
// only. The rgm package turns a File into a resource type and applies the
// rules about which properties and attributes may appear where. Every
// error names the line and column and what was expected.
package rtr

import (
	"fmt"
	"strings"
)

// Pos is a position in the file, 1-based.
type Pos struct{ Line, Col int }

func (p Pos) String() string { return fmt.Sprintf("%d:%d", p.Line, p.Col) }

// Error is a syntax error.
type Error struct {
	File string
	Pos  Pos
	Msg  string
}

func (e *Error) Error() string {
	if e.File != "" {
		return fmt.Sprintf("%s:%s: %s", e.File, e.Pos, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.Pos, e.Msg)
}

type tokKind int

const (
	tokEOF tokKind = iota
	tokWord
	tokQuoted
	tokLBrace
	tokRBrace
	tokSemi
	tokEquals
	tokComma
	tokDirective // #$upgrade or #$upgrade_from ...: the whole line
)

func (k tokKind) String() string {
	switch k {
	case tokEOF:
		return "end of file"
	case tokWord:
		return "a word"
	case tokQuoted:
		return "a quoted string"
	case tokLBrace:
		return `"{"`
	case tokRBrace:
		return `"}"`
	case tokSemi:
		return `";"`
	case tokEquals:
		return `"="`
	case tokComma:
		return `","`
	case tokDirective:
		return "a #$ directive"
	}
	return "?"
}

type token struct {
	kind tokKind
	text string
	pos  Pos
}

func (t token) describe() string {
	switch t.kind {
	case tokWord:
		return fmt.Sprintf("%q", t.text)
	case tokQuoted:
		return fmt.Sprintf("the string %q", t.text)
	case tokDirective:
		return fmt.Sprintf("the directive %q", t.text)
	}
	return t.kind.String()
}

// lexer splits an RTR file into tokens. Comments run from # to the end of
// the line; #$ starts a directive that also runs to the end of the line.
type lexer struct {
	src       string
	off       int
	line, col int
}

func newLexer(src string) *lexer { return &lexer{src: src, line: 1, col: 1} }

func (l *lexer) peekByte() byte {
	if l.off < len(l.src) {
		return l.src[l.off]
	}
	return 0
}

func (l *lexer) advance() byte {
	c := l.src[l.off]
	l.off++
	if c == '\n' {
		l.line++
		l.col = 1
	} else {
		l.col++
	}
	return c
}

// isWordByte is true for the bytes of a bare word: anything that is not
// blank, punctuation, a quote or a comment start.
func isWordByte(c byte) bool {
	switch c {
	case ' ', '\t', '\r', '\n', '{', '}', ';', '=', ',', '"', '#':
		return false
	}
	return c >= 0x20 && c < 0x7f
}

func (l *lexer) next() (token, error) {
	for l.off < len(l.src) {
		c := l.peekByte()
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			l.advance()
		case c == '#':
			pos := Pos{l.line, l.col}
			start := l.off
			for l.off < len(l.src) && l.peekByte() != '\n' {
				l.advance()
			}
			text := strings.TrimRight(l.src[start:l.off], " \t\r")
			if strings.HasPrefix(text, "#$") {
				return token{tokDirective, text, pos}, nil
			}
		default:
			return l.token()
		}
	}
	return token{kind: tokEOF, pos: Pos{l.line, l.col}}, nil
}

func (l *lexer) token() (token, error) {
	pos := Pos{l.line, l.col}
	c := l.advance()
	switch c {
	case '{':
		return token{tokLBrace, "{", pos}, nil
	case '}':
		return token{tokRBrace, "}", pos}, nil
	case ';':
		return token{tokSemi, ";", pos}, nil
	case '=':
		return token{tokEquals, "=", pos}, nil
	case ',':
		return token{tokComma, ",", pos}, nil
	case '"':
		var b strings.Builder
		for {
			if l.off >= len(l.src) {
				return token{}, &Error{Pos: pos, Msg: "a quoted string is not closed (missing \")"}
			}
			c := l.advance()
			switch {
			case c == '"':
				return token{tokQuoted, b.String(), pos}, nil
			case c == '\\' && l.off < len(l.src) && (l.peekByte() == '"' || l.peekByte() == '\\'):
				b.WriteByte(l.advance())
			case c == '\n':
				return token{}, &Error{Pos: pos, Msg: "a quoted string runs past the end of the line (missing \")"}
			default:
				b.WriteByte(c)
			}
		}
	}
	if !isWordByte(c) {
		return token{}, &Error{Pos: pos, Msg: fmt.Sprintf("unexpected character %q", c)}
	}
	start := l.off - 1
	for l.off < len(l.src) && isWordByte(l.peekByte()) {
		l.advance()
	}
	return token{tokWord, l.src[start:l.off], pos}, nil
}
