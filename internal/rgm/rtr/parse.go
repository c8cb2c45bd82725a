package rtr

import (
	"fmt"
	"strings"
)

// File is a parsed RTR file, in the order written.
type File struct {
	Props      []Prop      // resource-type properties; the first is RESOURCE_TYPE
	Directives []Directive // #$upgrade lines, between the two sections
	Decls      []Decl      // property declarations
}

// Prop is one statement "NAME = v1, v2;" or "NAME;" (a bare boolean).
type Prop struct {
	Name   string // as written
	Key    string // upper case, for comparisons
	Values []Value
	Bare   bool
	Pos    Pos
}

// Value is one value as written.
type Value struct {
	Text   string
	Quoted bool
	Pos    Pos
}

// Directive is a #$upgrade or #$upgrade_from line.
type Directive struct {
	Text string
	Pos  Pos
}

// Decl is one braced property declaration.
type Decl struct {
	Pos      Pos
	Property Value // the value of PROPERTY = ...
	Attrs    []Prop
	// Enum holds the literals of "ENUM { a, b };" when present.
	Enum    []Value
	EnumPos Pos
}

// Parse reads an RTR file. name is used in error messages only.
func Parse(name string, src []byte) (*File, error) {
	p := &parser{lex: newLexer(string(src)), name: name}
	f, err := p.file()
	if err != nil {
		if e, ok := err.(*Error); ok && e.File == "" {
			e.File = name
		}
		return nil, err
	}
	return f, nil
}

type parser struct {
	lex  *lexer
	name string
	tok  token
	have bool
}

func (p *parser) peek() (token, error) {
	if !p.have {
		t, err := p.lex.next()
		if err != nil {
			return token{}, err
		}
		p.tok, p.have = t, true
	}
	return p.tok, nil
}

func (p *parser) take() (token, error) {
	t, err := p.peek()
	p.have = false
	return t, err
}

func (p *parser) expect(kind tokKind, what string) (token, error) {
	t, err := p.take()
	if err != nil {
		return t, err
	}
	if t.kind != kind {
		return t, &Error{Pos: t.pos, Msg: fmt.Sprintf("expected %s, found %s", what, t.describe())}
	}
	return t, nil
}

func (p *parser) file() (*File, error) {
	f := &File{}
	section := 1 // 1: type properties, 2: declarations
	for {
		t, err := p.peek()
		if err != nil {
			return nil, err
		}
		switch t.kind {
		case tokEOF:
			if len(f.Props) == 0 {
				return nil, &Error{Pos: t.pos, Msg: "the file is empty; it must start with RESOURCE_TYPE = name;"}
			}
			if len(f.Directives) > 0 && len(f.Decls) == 0 {
				d := f.Directives[len(f.Directives)-1]
				return nil, &Error{Pos: d.Pos, Msg: "#$upgrade directives must be followed by property declarations"}
			}
			return f, nil
		case tokDirective:
			p.take()
			if len(f.Props) == 0 || section == 2 {
				return nil, &Error{Pos: t.pos, Msg: "a #$upgrade directive may only stand between the resource type properties and the property declarations"}
			}
			if !strings.HasPrefix(t.text, "#$upgrade") {
				return nil, &Error{Pos: t.pos, Msg: fmt.Sprintf("unknown directive %q (only #$upgrade and #$upgrade_from)", t.text)}
			}
			f.Directives = append(f.Directives, Directive{Text: t.text, Pos: t.pos})
		case tokLBrace:
			section = 2
			d, err := p.decl()
			if err != nil {
				return nil, err
			}
			f.Decls = append(f.Decls, d)
		case tokWord:
			if section == 2 || len(f.Directives) > 0 {
				return nil, &Error{Pos: t.pos, Msg: fmt.Sprintf("resource type property %s must come before the #$upgrade directives and property declarations", t.text)}
			}
			st, err := p.statement()
			if err != nil {
				return nil, err
			}
			if len(f.Props) == 0 && st.Key != "RESOURCE_TYPE" {
				return nil, &Error{Pos: st.Pos, Msg: fmt.Sprintf("the first statement must be RESOURCE_TYPE = name; found %s", st.Name)}
			}
			f.Props = append(f.Props, st)
		default:
			p.take()
			return nil, &Error{Pos: t.pos, Msg: fmt.Sprintf("expected a property name or \"{\", found %s", t.describe())}
		}
	}
}

// statement reads NAME [= value [, value]...] ;
func (p *parser) statement() (Prop, error) {
	name, err := p.expect(tokWord, "a property name")
	if err != nil {
		return Prop{}, err
	}
	st := Prop{Name: name.text, Key: strings.ToUpper(name.text), Pos: name.pos}
	t, err := p.take()
	if err != nil {
		return st, err
	}
	switch t.kind {
	case tokSemi:
		st.Bare = true
		return st, nil
	case tokEquals:
	default:
		return st, &Error{Pos: t.pos, Msg: fmt.Sprintf("expected \"=\" or \";\" after %s, found %s", name.text, t.describe())}
	}
	for {
		v, err := p.take()
		if err != nil {
			return st, err
		}
		if v.kind != tokWord && v.kind != tokQuoted {
			return st, &Error{Pos: v.pos, Msg: fmt.Sprintf("expected a value for %s, found %s", name.text, v.describe())}
		}
		st.Values = append(st.Values, Value{Text: v.text, Quoted: v.kind == tokQuoted, Pos: v.pos})
		sep, err := p.take()
		if err != nil {
			return st, err
		}
		switch sep.kind {
		case tokSemi:
			return st, nil
		case tokComma:
			continue
		}
		return st, &Error{Pos: sep.pos, Msg: fmt.Sprintf("expected \",\" or \";\" after a value of %s, found %s", name.text, sep.describe())}
	}
}

// decl reads { PROPERTY = name; attribute; ... }
func (p *parser) decl() (Decl, error) {
	open, _ := p.take()
	d := Decl{Pos: open.pos}
	seen := map[string]Pos{}
	for {
		t, err := p.peek()
		if err != nil {
			return d, err
		}
		switch t.kind {
		case tokRBrace:
			p.take()
			if d.Property.Text == "" {
				return d, &Error{Pos: d.Pos, Msg: "a property declaration needs PROPERTY = name;"}
			}
			return d, nil
		case tokEOF:
			return d, &Error{Pos: d.Pos, Msg: "a property declaration is not closed (missing \"}\")"}
		case tokWord:
		default:
			p.take()
			return d, &Error{Pos: t.pos, Msg: fmt.Sprintf("expected an attribute or \"}\", found %s", t.describe())}
		}
		if strings.EqualFold(t.text, "ENUM") {
			if err := p.enum(&d); err != nil {
				return d, err
			}
			continue
		}
		a, err := p.statement()
		if err != nil {
			return d, err
		}
		if first, dup := seen[a.Key]; dup {
			return d, &Error{Pos: a.Pos, Msg: fmt.Sprintf("%s given twice in one declaration (first at %s)", a.Name, first)}
		}
		seen[a.Key] = a.Pos
		if a.Key == "PROPERTY" {
			if len(a.Values) != 1 {
				return d, &Error{Pos: a.Pos, Msg: "PROPERTY takes exactly one name"}
			}
			d.Property = a.Values[0]
			continue
		}
		d.Attrs = append(d.Attrs, a)
	}
}

// enum reads ENUM { a, b, c } ;
func (p *parser) enum(d *Decl) error {
	kw, _ := p.take()
	if d.Enum != nil {
		return &Error{Pos: kw.pos, Msg: fmt.Sprintf("ENUM given twice in one declaration (first at %s)", d.EnumPos)}
	}
	d.EnumPos = kw.pos
	if _, err := p.expect(tokLBrace, `"{" after ENUM`); err != nil {
		return err
	}
	for {
		v, err := p.take()
		if err != nil {
			return err
		}
		if v.kind != tokWord && v.kind != tokQuoted {
			return &Error{Pos: v.pos, Msg: fmt.Sprintf("expected an enumeration literal, found %s", v.describe())}
		}
		d.Enum = append(d.Enum, Value{Text: v.text, Quoted: v.kind == tokQuoted, Pos: v.pos})
		sep, err := p.take()
		if err != nil {
			return err
		}
		if sep.kind == tokRBrace {
			break
		}
		if sep.kind != tokComma {
			return &Error{Pos: sep.pos, Msg: fmt.Sprintf("expected \",\" or \"}\" in the ENUM list, found %s", sep.describe())}
		}
	}
	_, err := p.expect(tokSemi, `";" after the ENUM list`)
	return err
}
