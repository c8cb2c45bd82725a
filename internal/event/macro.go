package event

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ErrMissingAttr is wrapped when a macro names an attribute the event does
// not have; the subscriber's command is then not run.
var ErrMissingAttr = errors.New("event: macro names a missing attribute")

// builtinMacros are expanded from the event itself; they win over an
// attribute of the same name.
var builtinMacros = map[string]func(ev *Event) string{
	"class":     func(ev *Event) string { return ev.Class },
	"subclass":  func(ev *Event) string { return ev.Subclass },
	"publisher": func(ev *Event) string { return ev.Publisher },
	"vendor":    func(*Event) string { return "steady" },
	"node":      func(ev *Event) string { return ev.Node },
	"sequence":  func(ev *Event) string { return strconv.FormatUint(ev.Seq, 10) },
	"timestamp": func(ev *Event) string { return ev.Time.UTC().Format(time.RFC3339Nano) },
}

// CheckMacros reports a syntax error in a subscriber argument: a "$" that
// is not followed by a name or "{name}", or an unterminated "${".
func CheckMacros(arg string) error {
	_, err := expand(arg, nil)
	return err
}

// Expand substitutes the macros of one subscriber argument with values of
// ev, as syseventadm does: $name or ${name} is a built-in (class, subclass,
// publisher, vendor, node, sequence, timestamp) or an attribute formatted
// by api.Value.Format, and \$ is a literal dollar sign. A missing attribute
// is an error wrapping ErrMissingAttr.
func Expand(arg string, ev *Event) (string, error) {
	if ev == nil {
		return "", errors.New("event: Expand needs an event")
	}
	return expand(arg, ev)
}

// expand does the work of Expand; with a nil event it only checks syntax.
func expand(arg string, ev *Event) (string, error) {
	if !strings.ContainsAny(arg, `$\`) {
		return arg, nil
	}
	var b strings.Builder
	for i := 0; i < len(arg); i++ {
		c := arg[i]
		if c == '\\' && i+1 < len(arg) && arg[i+1] == '$' {
			b.WriteByte('$')
			i++
			continue
		}
		if c != '$' {
			b.WriteByte(c)
			continue
		}
		var name string
		if i+1 < len(arg) && arg[i+1] == '{' {
			end := strings.IndexByte(arg[i+2:], '}')
			if end < 0 {
				return "", fmt.Errorf("event: %q: \"${\" at offset %d has no closing \"}\"", arg, i)
			}
			name = arg[i+2 : i+2+end]
			if name == "" {
				return "", fmt.Errorf("event: %q: empty \"${}\" at offset %d", arg, i)
			}
			i += 2 + end
		} else {
			j := i + 1
			for j < len(arg) && isNameByte(arg[j], j == i+1) {
				j++
			}
			if j == i+1 {
				return "", fmt.Errorf("event: %q: \"$\" at offset %d is not followed by a name; write \\$ for a dollar sign", arg, i)
			}
			name = arg[i+1 : j]
			i = j - 1
		}
		if ev == nil {
			continue
		}
		if f, ok := builtinMacros[name]; ok {
			b.WriteString(f(ev))
			continue
		}
		v, ok := ev.Attrs[name]
		if !ok {
			return "", fmt.Errorf("%w: $%s (event %d %s/%s)", ErrMissingAttr, name, ev.Seq, ev.Class, ev.Subclass)
		}
		b.WriteString(v.Format())
	}
	return b.String(), nil
}

func isNameByte(c byte, first bool) bool {
	switch {
	case c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'):
		return true
	case c >= '0' && c <= '9':
		return !first
	}
	return false
}
