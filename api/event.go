package api

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Event is one published event. Seq is assigned by the journal of the node
// that published it, starts at 1 and is never reused on that node.
type Event struct {
	Seq       uint64    `json:"seq"`
	Time      time.Time `json:"time"`
	Class     string    `json:"class"`
	Subclass  string    `json:"subclass"`
	Publisher string    `json:"publisher"`
	Node      string    `json:"node"`
	Attrs     Attrs     `json:"attrs,omitempty"`
}

// Attrs are the typed attributes of an event, by name.
type Attrs map[string]Value

// Names returns the attribute names in sorted order.
func (a Attrs) Names() []string {
	names := make([]string, 0, len(a))
	for k := range a {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// Type is the type of an attribute value.
type Type string

// Attribute types. They follow the sysevent data types that scripts rely
// on for formatting (see Value.Format).
const (
	TypeString  Type = "string"
	TypeInt     Type = "int64"
	TypeUint    Type = "uint64"
	TypeBool    Type = "bool"
	TypeTime    Type = "time"
	TypeStrings Type = "string_array"
	TypeInts    Type = "int64_array"
)

// Value is a typed attribute value. Exactly the field that matches Type is
// meaningful. Build values with String, Int, Uint, Bool, Time, Strings, Ints.
type Value struct {
	Type Type
	s    string
	i    int64
	u    uint64
	b    bool
	t    time.Time
	ss   []string
	is   []int64
}

// String makes a string value.
func String(s string) Value { return Value{Type: TypeString, s: s} }

// Int makes a signed integer value.
func Int(i int64) Value { return Value{Type: TypeInt, i: i} }

// Uint makes an unsigned integer value.
func Uint(u uint64) Value { return Value{Type: TypeUint, u: u} }

// Bool makes a boolean value.
func Bool(b bool) Value { return Value{Type: TypeBool, b: b} }

// Time makes a time value.
func Time(t time.Time) Value { return Value{Type: TypeTime, t: t} }

// Strings makes a string array value.
func Strings(s ...string) Value { return Value{Type: TypeStrings, ss: append([]string(nil), s...)} }

// Ints makes a signed integer array value.
func Ints(i ...int64) Value { return Value{Type: TypeInts, is: append([]int64(nil), i...)} }

// Format renders v the way syseventadm substitutes a macro: signed integers
// in decimal, unsigned integers in hexadecimal with 0x, strings as they are,
// arrays joined with single spaces, booleans as true/false and times in
// RFC 3339 with nanoseconds (UTC).
func (v Value) Format() string {
	switch v.Type {
	case TypeString:
		return v.s
	case TypeInt:
		return strconv.FormatInt(v.i, 10)
	case TypeUint:
		return "0x" + strconv.FormatUint(v.u, 16)
	case TypeBool:
		return strconv.FormatBool(v.b)
	case TypeTime:
		return v.t.UTC().Format(time.RFC3339Nano)
	case TypeStrings:
		return strings.Join(v.ss, " ")
	case TypeInts:
		parts := make([]string, len(v.is))
		for i, n := range v.is {
			parts[i] = strconv.FormatInt(n, 10)
		}
		return strings.Join(parts, " ")
	}
	return ""
}

// Display renders v for people: like Format, but unsigned integers in
// decimal (hexadecimal is a script convention, not a reading aid).
func (v Value) Display() string {
	if v.Type == TypeUint {
		return strconv.FormatUint(v.u, 10)
	}
	return v.Format()
}

// Str returns the string of a TypeString value and whether v is one.
func (v Value) Str() (string, bool) { return v.s, v.Type == TypeString }

// Int64 returns the integer of a TypeInt value and whether v is one.
func (v Value) Int64() (int64, bool) { return v.i, v.Type == TypeInt }

// Uint64 returns the integer of a TypeUint value and whether v is one.
func (v Value) Uint64() (uint64, bool) { return v.u, v.Type == TypeUint }

// Equal reports whether v and w have the same type and value.
func (v Value) Equal(w Value) bool {
	if v.Type != w.Type {
		return false
	}
	switch v.Type {
	case TypeTime:
		return v.t.Equal(w.t)
	case TypeStrings:
		return fmt.Sprint(v.ss) == fmt.Sprint(w.ss)
	case TypeInts:
		return fmt.Sprint(v.is) == fmt.Sprint(w.is)
	}
	return v.s == w.s && v.i == w.i && v.u == w.u && v.b == w.b
}

type wireValue struct {
	Type  Type            `json:"type"`
	Value json.RawMessage `json:"value"`
}

// MarshalJSON encodes v as {"type": ..., "value": ...}.
func (v Value) MarshalJSON() ([]byte, error) {
	return v.appendJSON(make([]byte, 0, 48))
}

// MarshalJSON encodes the attributes in name order in one pass: events are
// encoded for every publish, and nested Marshalers would each be encoded
// and re-scanned by encoding/json.
func (a Attrs) MarshalJSON() ([]byte, error) {
	if a == nil {
		return []byte("null"), nil
	}
	b := make([]byte, 0, 64*len(a)+2)
	b = append(b, '{')
	for i, name := range a.Names() {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, name)
		b = append(b, ':')
		var err error
		if b, err = a[name].appendJSON(b); err != nil {
			return nil, err
		}
	}
	return append(b, '}'), nil
}

func (v Value) appendJSON(b []byte) ([]byte, error) {
	b = append(b, `{"type":`...)
	b = appendJSONString(b, string(v.Type))
	b = append(b, `,"value":`...)
	switch v.Type {
	case TypeString:
		b = appendJSONString(b, v.s)
	case TypeInt:
		b = strconv.AppendInt(b, v.i, 10)
	case TypeUint:
		b = strconv.AppendUint(b, v.u, 10)
	case TypeBool:
		b = strconv.AppendBool(b, v.b)
	case TypeTime:
		b = append(b, '"')
		b = v.t.UTC().AppendFormat(b, time.RFC3339Nano)
		b = append(b, '"')
	case TypeStrings:
		b = append(b, '[')
		for i, s := range v.ss {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, s)
		}
		b = append(b, ']')
	case TypeInts:
		b = append(b, '[')
		for i, n := range v.is {
			if i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendInt(b, n, 10)
		}
		b = append(b, ']')
	default:
		return nil, fmt.Errorf("api: attribute of unknown type %q", v.Type)
	}
	return append(b, '}'), nil
}

// appendJSONString appends s as a JSON string. Invalid UTF-8 becomes
// U+FFFD, as encoding/json does.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c < 0x20 || c == '<' || c == '>' || c == '&':
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
		default:
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}

// UnmarshalJSON decodes {"type": ..., "value": ...} and checks that the
// value has the declared type.
func (v *Value) UnmarshalJSON(b []byte) error {
	var w wireValue
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	if len(w.Value) == 0 {
		return fmt.Errorf("attribute of type %q has no value", w.Type)
	}
	var err error
	*v = Value{Type: w.Type}
	switch w.Type {
	case TypeString:
		err = json.Unmarshal(w.Value, &v.s)
	case TypeInt:
		err = json.Unmarshal(w.Value, &v.i)
	case TypeUint:
		err = json.Unmarshal(w.Value, &v.u)
	case TypeBool:
		err = json.Unmarshal(w.Value, &v.b)
	case TypeTime:
		var s string
		if err = json.Unmarshal(w.Value, &s); err == nil {
			v.t, err = time.Parse(time.RFC3339Nano, s)
		}
	case TypeStrings:
		err = json.Unmarshal(w.Value, &v.ss)
	case TypeInts:
		err = json.Unmarshal(w.Value, &v.is)
	default:
		return fmt.Errorf("unknown attribute type %q (want one of string, int64, uint64, bool, time, string_array, int64_array)", w.Type)
	}
	if err != nil {
		return fmt.Errorf("attribute value does not match its type %q: %w", w.Type, err)
	}
	return nil
}

// ParseValue reads a value of type t from its command-line text, as given
// to "steady events post NAME=TYPE:VALUE".
func ParseValue(t Type, s string) (Value, error) {
	switch t {
	case TypeString:
		return String(s), nil
	case TypeInt:
		i, err := strconv.ParseInt(s, 0, 64)
		if err != nil {
			return Value{}, fmt.Errorf("%q is not a signed 64-bit integer", s)
		}
		return Int(i), nil
	case TypeUint:
		u, err := strconv.ParseUint(s, 0, 64)
		if err != nil {
			return Value{}, fmt.Errorf("%q is not an unsigned 64-bit integer", s)
		}
		return Uint(u), nil
	case TypeBool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return Value{}, fmt.Errorf("%q is not a boolean (true or false)", s)
		}
		return Bool(b), nil
	case TypeTime:
		tm, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return Value{}, fmt.Errorf("%q is not an RFC 3339 time", s)
		}
		return Time(tm), nil
	case TypeStrings:
		if s == "" {
			return Strings(), nil
		}
		return Strings(strings.Split(s, ",")...), nil
	case TypeInts:
		if s == "" {
			return Ints(), nil
		}
		var is []int64
		for _, p := range strings.Split(s, ",") {
			i, err := strconv.ParseInt(p, 0, 64)
			if err != nil {
				return Value{}, fmt.Errorf("%q is not a signed 64-bit integer", p)
			}
			is = append(is, i)
		}
		return Ints(is...), nil
	}
	return Value{}, fmt.Errorf("unknown attribute type %q (want one of string, int64, uint64, bool, time, string_array, int64_array)", t)
}
