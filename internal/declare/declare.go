// Package declare reads and writes the configuration files of "steady
// config apply" and "steady config export": resource types, resource
// groups and resources declared in YAML. Reading is strict, so that a
// misspelt key or a value of the wrong kind is reported with its file,
// line and column instead of being ignored.
package declare

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/steady-ha/steady/api"
	"github.com/steady-ha/steady/internal/config"
	"gopkg.in/yaml.v3"
)

// Version is the format version this package reads and writes.
const Version = 1

// Problem is one thing wrong with a file.
type Problem struct {
	Line, Column int
	Path         string // e.g. groups.web.resources.srv.type
	Msg          string
}

// Error lists every problem found in a file.
type Error struct {
	File     string
	Problems []Problem
}

func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		loc := e.File
		if p.Line > 0 {
			loc = fmt.Sprintf("%s:%d:%d", e.File, p.Line, p.Column)
		}
		if p.Path != "" {
			lines[i] = loc + ": " + p.Path + ": " + p.Msg
		} else {
			lines[i] = loc + ": " + p.Msg
		}
	}
	if len(lines) == 1 {
		return lines[0]
	}
	return fmt.Sprintf("%d problems:\n  %s", len(lines), strings.Join(lines, "\n  "))
}

type reader struct {
	problems []Problem
}

func (r *reader) bad(n *yaml.Node, path, format string, args ...any) {
	r.problems = append(r.problems, Problem{Line: n.Line, Column: n.Column, Path: path, Msg: fmt.Sprintf(format, args...)})
}

// Parse reads a declaration; name is used in messages only.
func Parse(name string, data []byte) (api.RGMDeclaration, error) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return api.RGMDeclaration{}, &Error{File: name, Problems: []Problem{{Msg: "the file is empty; it needs at least \"version: 1\""}}}
		}
		return api.RGMDeclaration{}, &Error{File: name, Problems: []Problem{{Msg: strings.TrimPrefix(err.Error(), "yaml: ")}}}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return api.RGMDeclaration{}, &Error{File: name, Problems: []Problem{{Line: extra.Line, Column: extra.Column, Msg: "more than one YAML document; steady reads exactly one"}}}
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	r := &reader{}
	var d api.RGMDeclaration
	version := 0
	r.mapping(root, "", []string{"version", "types", "groups"}, func(key string, k, v *yaml.Node) {
		switch key {
		case "version":
			if n, err := strconv.Atoi(v.Value); v.Kind != yaml.ScalarNode || err != nil {
				r.bad(v, "version", "must be a number")
			} else {
				version = n
				if n != Version {
					r.bad(v, "version", "this steady reads version %d, not %d", Version, n)
				}
			}
		case "types":
			d.Types = r.types(v)
		case "groups":
			d.Groups = r.groups(v)
		}
	})
	if version == 0 && len(r.problems) == 0 {
		r.bad(root, "", "the file must say \"version: %d\"", Version)
	}
	if len(r.problems) > 0 {
		return api.RGMDeclaration{}, &Error{File: name, Problems: r.problems}
	}
	return d, nil
}

// mapping walks a mapping node, reporting unknown and repeated keys.
func (r *reader) mapping(n *yaml.Node, path string, keys []string, f func(key string, k, v *yaml.Node)) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return
	}
	if n.Kind != yaml.MappingNode {
		where := path
		if where == "" {
			where = "the document"
		}
		r.bad(n, path, "%s must be a mapping of keys to values", where)
		return
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		full := join(path, k.Value)
		if line, dup := seen[k.Value]; dup {
			r.bad(k, full, "%q is already given at line %d", k.Value, line)
			continue
		}
		seen[k.Value] = k.Line
		if keys != nil && !contains(keys, k.Value) {
			msg := fmt.Sprintf("unknown key %q", k.Value)
			if s := config.Suggest(k.Value, keys); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			r.bad(k, full, "%s; the keys here are %s", msg, strings.Join(keys, ", "))
			continue
		}
		f(k.Value, k, v)
	}
}

func (r *reader) types(n *yaml.Node) []api.RGMTypeDecl {
	if n.Kind != yaml.SequenceNode {
		r.bad(n, "types", "must be a list, such as \"- rtr: /opt/x/x.rtr\" or \"- ocf: ocf:heartbeat:Dummy\"")
		return nil
	}
	var out []api.RGMTypeDecl
	for i, item := range n.Content {
		path := fmt.Sprintf("types[%d]", i)
		var t api.RGMTypeDecl
		r.mapping(item, path, []string{"name", "rtr", "ocf"}, func(key string, k, v *yaml.Node) {
			s := r.str(v, join(path, key))
			switch key {
			case "name":
				t.Name = s
			case "rtr":
				t.RTR = s
			case "ocf":
				t.OCF = s
			}
		})
		if t.Name == "" && t.RTR == "" && t.OCF == "" {
			r.bad(item, path, "give rtr (an RTR file), ocf (an agent) or name (a registered type)")
		}
		out = append(out, t)
	}
	return out
}

func (r *reader) groups(n *yaml.Node) []api.RGMGroupDecl {
	var out []api.RGMGroupDecl
	r.mapping(n, "groups", nil, func(name string, k, v *yaml.Node) {
		path := join("groups", name)
		g := api.RGMGroupDecl{Name: name}
		r.mapping(v, path, []string{"properties", "managed", "online", "suspended", "resources"}, func(key string, k, v *yaml.Node) {
			switch key {
			case "properties":
				g.Props = r.props(v, join(path, key))
			case "managed":
				g.Managed = r.boolean(v, join(path, key))
			case "online":
				g.Online = r.boolean(v, join(path, key))
			case "suspended":
				g.Suspended = r.boolean(v, join(path, key))
			case "resources":
				g.Resources = r.resources(v, join(path, key))
			}
		})
		out = append(out, g)
	})
	return out
}

func (r *reader) resources(n *yaml.Node, path string) []api.RGMResourceDecl {
	var out []api.RGMResourceDecl
	r.mapping(n, path, nil, func(name string, k, v *yaml.Node) {
		rp := join(path, name)
		res := api.RGMResourceDecl{Name: name}
		r.mapping(v, rp, []string{"type", "properties", "enabled", "monitored"}, func(key string, k, v *yaml.Node) {
			switch key {
			case "type":
				res.Type = r.str(v, join(rp, key))
			case "properties":
				res.Props = r.props(v, join(rp, key))
			case "enabled":
				res.Enabled = r.boolean(v, join(rp, key))
			case "monitored":
				res.Monitored = r.boolean(v, join(rp, key))
			}
		})
		out = append(out, res)
	})
	return out
}

// props reads NAME: VALUE pairs; a value is a scalar or a list of scalars.
func (r *reader) props(n *yaml.Node, path string) map[string][]string {
	out := map[string][]string{}
	r.mapping(n, path, nil, func(name string, k, v *yaml.Node) {
		p := join(path, name)
		switch v.Kind {
		case yaml.ScalarNode:
			out[name] = []string{v.Value}
		case yaml.SequenceNode:
			vals := []string{}
			for _, x := range v.Content {
				if x.Kind != yaml.ScalarNode {
					r.bad(x, p, "a list element must be a plain value")
					continue
				}
				vals = append(vals, x.Value)
			}
			out[name] = vals
		default:
			r.bad(v, p, "must be a value or a list of values")
		}
	})
	return out
}

func (r *reader) str(n *yaml.Node, path string) string {
	if n.Kind != yaml.ScalarNode {
		r.bad(n, path, "must be a plain value")
		return ""
	}
	return n.Value
}

func (r *reader) boolean(n *yaml.Node, path string) *bool {
	if n.Kind == yaml.ScalarNode {
		switch strings.ToLower(n.Value) {
		case "true", "yes":
			b := true
			return &b
		case "false", "no":
			b := false
			return &b
		}
	}
	r.bad(n, path, "must be true or false")
	return nil
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Format writes a declaration in the file format, groups and resources in
// the order given (Export gives resources in start order).
func Format(d api.RGMDeclaration) []byte {
	root := mapNode()
	add(root, "version", scalar(strconv.Itoa(Version)))
	if len(d.Types) > 0 {
		seq := &yaml.Node{Kind: yaml.SequenceNode}
		for _, t := range d.Types {
			m := mapNode()
			if t.Name != "" {
				add(m, "name", scalar(t.Name))
			}
			if t.RTR != "" {
				add(m, "rtr", scalar(t.RTR))
			}
			if t.OCF != "" {
				add(m, "ocf", scalar(t.OCF))
			}
			seq.Content = append(seq.Content, m)
		}
		add(root, "types", seq)
	}
	if len(d.Groups) > 0 {
		groups := mapNode()
		for _, g := range d.Groups {
			gn := mapNode()
			addFlag(gn, "managed", g.Managed)
			addFlag(gn, "online", g.Online)
			addFlag(gn, "suspended", g.Suspended)
			addProps(gn, g.Props)
			if len(g.Resources) > 0 {
				rs := mapNode()
				for _, r := range g.Resources {
					rn := mapNode()
					add(rn, "type", scalar(r.Type))
					addFlag(rn, "enabled", r.Enabled)
					addFlag(rn, "monitored", r.Monitored)
					addProps(rn, r.Props)
					add(rs, r.Name, rn)
				}
				add(gn, "resources", rs)
			}
			add(groups, g.Name, gn)
		}
		add(root, "groups", groups)
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(root); err != nil {
		// Only nodes built above are encoded; they always encode.
		panic(err)
	}
	enc.Close()
	return buf.Bytes()
}

func mapNode() *yaml.Node { return &yaml.Node{Kind: yaml.MappingNode} }

func scalar(s string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Value: s} }

func add(m *yaml.Node, key string, v *yaml.Node) {
	m.Content = append(m.Content, scalar(key), v)
}

func addFlag(m *yaml.Node, key string, v *bool) {
	if v != nil {
		add(m, key, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: strconv.FormatBool(*v)})
	}
}

func addProps(m *yaml.Node, props map[string][]string) {
	if len(props) == 0 {
		return
	}
	names := make([]string, 0, len(props))
	for k := range props {
		names = append(names, k)
	}
	sort.Strings(names)
	pn := mapNode()
	for _, k := range names {
		v := props[k]
		if len(v) == 1 {
			add(pn, k, scalar(v[0]))
			continue
		}
		seq := &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle}
		for _, x := range v {
			seq.Content = append(seq.Content, scalar(x))
		}
		add(pn, k, seq)
	}
	add(m, "properties", pn)
}
