package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Problem is one thing wrong with a configuration, located as precisely as
// the input allows.
type Problem struct {
	File   string // empty when the value did not come from a file
	Line   int    // 0 when unknown
	Column int
	Key    string // dotted path, e.g. "store.election"
	Msg    string
}

func (p Problem) String() string {
	var loc string
	switch {
	case p.File != "" && p.Line > 0:
		loc = fmt.Sprintf("%s:%d:%d: ", p.File, p.Line, p.Column)
	case p.File != "":
		loc = p.File + ": "
	}
	if p.Key != "" {
		return loc + p.Key + ": " + p.Msg
	}
	return loc + p.Msg
}

// Error lists every problem found in a configuration.
type Error struct {
	Problems []Problem
}

func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	if len(lines) == 1 {
		return "config: " + lines[0]
	}
	return fmt.Sprintf("config: %d problems:\n  %s", len(lines), strings.Join(lines, "\n  "))
}

// LoadFile reads, decodes and validates the configuration in path.
func LoadFile(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	return Parse(path, data)
}

// Parse decodes and validates a configuration document. name is used in
// error messages only. Keys that are absent keep their default values.
func Parse(name string, data []byte) (Config, error) {
	cfg := Default()
	cfg.Version = 0 // a file must say which format it is written in
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return Config{}, &Error{Problems: []Problem{{File: name, Msg: "the file is empty; it needs at least \"version: 1\""}}}
		}
		return Config{}, &Error{Problems: []Problem{yamlProblem(name, err)}}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return Config{}, &Error{Problems: []Problem{{File: name, Line: extra.Line, Column: extra.Column, Msg: "more than one YAML document; steady reads exactly one"}}}
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	d := decoder{file: name, lines: map[string][2]int{}}
	d.decode(root, reflect.ValueOf(&cfg).Elem(), "")
	if len(d.problems) > 0 {
		return Config{}, &Error{Problems: d.problems}
	}
	if err := cfg.Validate(); err != nil {
		var ce *Error
		if errors.As(err, &ce) {
			for i := range ce.Problems {
				p := &ce.Problems[i]
				p.File = name
				if at, ok := d.lookup(p.Key); ok {
					p.Line, p.Column = at[0], at[1]
				}
			}
		}
		return Config{}, err
	}
	return cfg, nil
}

// decoder walks the YAML tree alongside the Go struct, so that every error
// can name the key path and the position, and unknown keys are caught.
type decoder struct {
	file     string
	problems []Problem
	lines    map[string][2]int // key path -> line, column of its value
}

func (d *decoder) problem(n *yaml.Node, key, format string, args ...any) {
	d.problems = append(d.problems, Problem{File: d.file, Line: n.Line, Column: n.Column, Key: key, Msg: fmt.Sprintf(format, args...)})
}

// lookup finds the position of key, or of its nearest ancestor present in
// the file.
func (d *decoder) lookup(key string) ([2]int, bool) {
	for key != "" {
		if at, ok := d.lines[key]; ok {
			return at, true
		}
		i := strings.LastIndex(key, ".")
		if i < 0 {
			break
		}
		key = key[:i]
	}
	return [2]int{}, false
}

var unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()

func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	if path != "" {
		d.lines[path] = [2]int{n.Line, n.Column}
	}
	isStruct := v.Kind() == reflect.Struct && !reflect.PointerTo(v.Type()).Implements(unmarshalerType)
	if v.Kind() == reflect.Slice && n.Kind == yaml.SequenceNode {
		// Element by element, so that the structs of a list are as strict
		// as the others and every element's position is known.
		out := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, e := range n.Content {
			d.decode(e, out.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
		v.Set(out)
		return
	}
	if !isStruct {
		if err := n.Decode(v.Addr().Interface()); err != nil {
			d.problem(n, path, "%s", cleanYAMLError(err))
		}
		return
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // "store:" with nothing under it keeps the defaults
	}
	if n.Kind != yaml.MappingNode {
		where := path
		if where == "" {
			where = "the document"
		}
		d.problem(n, path, "%s must be a mapping of keys to values, not %s", where, kindName(n))
		return
	}
	fields := yamlFields(v.Type())
	seen := make(map[string]int, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		name := k.Value
		full := name
		if path != "" {
			full = path + "." + name
		}
		if first, dup := seen[name]; dup {
			d.problems = append(d.problems, Problem{File: d.file, Line: k.Line, Column: k.Column, Key: full,
				Msg: fmt.Sprintf("key %q is already defined at line %d", name, first)})
			continue
		}
		seen[name] = k.Line
		idx, ok := fields[name]
		if !ok {
			msg := fmt.Sprintf("unknown key %q", name)
			if s := suggest(name, fields); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			if path != "" {
				msg += " in " + path
			}
			d.problems = append(d.problems, Problem{File: d.file, Line: k.Line, Column: k.Column, Key: full, Msg: msg})
			continue
		}
		d.decode(val, v.Field(idx), full)
	}
}

func yamlFields(t reflect.Type) map[string]int {
	m := make(map[string]int, t.NumField())
	for i := 0; i < t.NumField(); i++ {
		tag := strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0]
		if tag != "" && tag != "-" {
			m[tag] = i
		}
	}
	return m
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("the value %q", n.Value)
	case yaml.AliasNode:
		return "an alias"
	}
	return "this"
}

var yamlLineRE = regexp.MustCompile(`^(yaml: )?(unmarshal errors:\s*)?(line \d+: )?`)

// cleanYAMLError drops yaml.v3's "yaml: unmarshal errors: line N:" prefix,
// since the caller reports the position itself.
func cleanYAMLError(err error) string {
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msgs := make([]string, len(te.Errors))
		for i, m := range te.Errors {
			msgs[i] = yamlLineRE.ReplaceAllString(m, "")
		}
		return strings.Join(msgs, "; ")
	}
	return yamlLineRE.ReplaceAllString(err.Error(), "")
}

var yamlPosRE = regexp.MustCompile(`line (\d+)(?:, column (\d+))?`)

func yamlProblem(file string, err error) Problem {
	p := Problem{File: file, Msg: strings.TrimPrefix(err.Error(), "yaml: ")}
	if m := yamlPosRE.FindStringSubmatch(err.Error()); m != nil {
		p.Line, _ = strconv.Atoi(m[1])
		if m[2] != "" {
			p.Column, _ = strconv.Atoi(m[2])
		}
		p.Msg = strings.TrimSpace(yamlLineRE.ReplaceAllString(p.Msg, ""))
	}
	return p
}

// suggest returns the known key closest to name when it is a plausible
// misspelling.
func suggest(name string, known map[string]int) string {
	keys := make([]string, 0, len(known))
	for k := range known {
		keys = append(keys, k)
	}
	return Suggest(name, keys)
}

// Suggest returns the key of keys closest to a misspelt name, or "" when
// none is close; other strict readers of YAML use it too.
func Suggest(name string, keys []string) string {
	keys = append([]string(nil), keys...)
	sort.Strings(keys)
	best, bestDist := "", len(name)/2+2
	for _, k := range keys {
		if dist := levenshtein(name, k); dist < bestDist {
			best, bestDist = k, dist
		}
	}
	return best
}

func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
