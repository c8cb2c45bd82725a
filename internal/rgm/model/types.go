package model

import (
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/steady-ha/steady/internal/rgm/rtr"
	"github.com/steady-ha/steady/internal/runas"
)

// Sources of resource types.
const (
	SourceRTR     = "rtr"
	SourceOCF     = "ocf"
	SourceBuiltin = "builtin"
)

// ResourceType describes what resources of a type are and how they are
// driven.
type ResourceType struct {
	Name        string `json:"name"` // VENDOR.TYPE for RTR types, ocf:PROVIDER:AGENT, steady.Process
	Source      string `json:"source"`
	File        string `json:"file,omitempty"` // the RTR file it was registered from
	Version     string `json:"version"`
	Vendor      string `json:"vendor,omitempty"`
	Description string `json:"description,omitempty"`
	BaseDir     string `json:"base_dir,omitempty"`
	APIVersion  int    `json:"api_version,omitempty"`
	// Failover types may only be in groups that are online on one node.
	Failover       bool   `json:"failover"`
	SingleInstance bool   `json:"single_instance,omitempty"`
	InitNodes      string `json:"init_nodes,omitempty"` // RG_PRIMARIES or RT_INSTALLED_NODES
	// Methods maps a method name to its absolute path (RTR types).
	Methods map[string]string `json:"methods,omitempty"`
	// Props are the resource properties: system ones declared by the type
	// and its extension properties.
	Props Schema `json:"props"`
	// OCF agents: the agent program and the actions its meta-data declares.
	Agent   string               `json:"agent,omitempty"`
	Actions map[string]OCFAction `json:"actions,omitempty"`
	// Other type properties of the RTR file kept for scha_resourcetype_get.
	Extra      map[string][]string `json:"extra,omitempty"`
	Registered time.Time           `json:"registered"`
}

// OCFAction is an action declared in an agent's meta-data.
type OCFAction struct {
	Timeout  time.Duration `json:"timeout"`
	Interval time.Duration `json:"interval,omitempty"`
}

// HasMethod reports whether the type provides method m: an RTR method, or
// the OCF action or built-in behaviour that plays its part.
func (t *ResourceType) HasMethod(m string) bool {
	switch t.Source {
	case SourceRTR:
		_, ok := t.Methods[m]
		return ok
	case SourceOCF:
		switch m {
		case MethodStart, MethodStop:
			return true
		case MethodValidate:
			_, ok := t.Actions["validate-all"]
			return ok
		case MethodUpdate:
			_, ok := t.Actions["reload"]
			return ok
		}
		return false
	case SourceBuiltin:
		return m == MethodStart || m == MethodStop || m == MethodValidate
	}
	return false
}

// RTR type properties other than methods that a file may set.
var rtrTypeProps = map[string]PropType{
	"RESOURCE_TYPE": TypeString, "VENDOR_ID": TypeString, "RT_VERSION": TypeString, "API_VERSION": TypeInt,
	"RT_DESCRIPTION": TypeString, "RT_BASEDIR": TypeString, "FAILOVER": TypeBool, "INIT_NODES": TypeEnum,
	"INSTALLED_NODES": TypeStringArray, "SINGLE_INSTANCE": TypeBool, "PKGLIST": TypeStringArray,
	"PROXY": TypeBool, "GLOBAL_ZONE": TypeBool, "RT_SYSTEM": TypeBool, "SYSDEFINED_TYPE": TypeString,
}

// Attributes a declaration may carry; the type keywords only on extensions.
var declAttrs = map[string]bool{
	"EXTENSION": true, "PER_NODE": true, "INT": true, "BOOLEAN": true, "STRING": true, "STRINGARRAY": true,
	"DEFAULT": true, "MIN": true, "MAX": true, "MINLENGTH": true, "MAXLENGTH": true,
	"ARRAY_MINSIZE": true, "ARRAY_MAXSIZE": true, "TUNABLE": true, "DESCRIPTION": true,
}

// CompileError collects the problems of an RTR file, each with its place.
type CompileError struct {
	File     string
	Problems []string
}

func (e *CompileError) Error() string {
	if len(e.Problems) == 1 {
		return e.Problems[0]
	}
	return fmt.Sprintf("%s: %d problems:\n  %s", e.File, len(e.Problems), strings.Join(e.Problems, "\n  "))
}

func (e *CompileError) Unwrap() error { return ErrInvalid }

// FromRTR builds a resource type from a parsed RTR file and checks the
// files its methods name (they must exist, be executable and not be
// writable by group or others).
func FromRTR(name string, f *rtr.File) (*ResourceType, error) {
	c := &compiler{file: name}
	t := c.typeProps(f)
	c.decls(t, f.Decls)
	if len(c.problems) > 0 {
		return nil, &CompileError{File: name, Problems: c.problems}
	}
	return t, nil
}

type compiler struct {
	file     string
	problems []string
}

func (c *compiler) bad(pos rtr.Pos, format string, args ...any) {
	c.problems = append(c.problems, fmt.Sprintf("%s:%s: %s", c.file, pos, fmt.Sprintf(format, args...)))
}

func (c *compiler) typeProps(f *rtr.File) *ResourceType {
	t := &ResourceType{Source: SourceRTR, Methods: map[string]string{}, Extra: map[string][]string{}, Registered: time.Now().UTC()}
	seen := map[string]rtr.Pos{}
	methodPos := map[string]rtr.Pos{}
	var rtName string
	for _, p := range f.Props {
		if first, dup := seen[p.Key]; dup {
			c.bad(p.Pos, "%s given twice (first at %s)", p.Name, first)
			continue
		}
		seen[p.Key] = p.Pos
		one := func() (string, bool) {
			if p.Bare || len(p.Values) != 1 {
				c.bad(p.Pos, "%s takes exactly one value", p.Name)
				return "", false
			}
			return p.Values[0].Text, true
		}
		if IsMethod(p.Key) {
			if v, ok := one(); ok {
				t.Methods[p.Key] = v
				methodPos[p.Key] = p.Pos
			}
			continue
		}
		kind, known := rtrTypeProps[p.Key]
		if !known {
			c.bad(p.Pos, "unknown resource type property %s", p.Name)
			continue
		}
		switch kind {
		case TypeBool:
			b := true
			if !p.Bare {
				v, ok := one()
				if !ok {
					continue
				}
				var valid bool
				if b, valid = ParseBool(v); !valid {
					c.bad(p.Values[0].Pos, "%s must be TRUE or FALSE, not %q", p.Name, v)
					continue
				}
			}
			switch p.Key {
			case "FAILOVER":
				t.Failover = b
			case "SINGLE_INSTANCE":
				t.SingleInstance = b
			default:
				t.Extra[p.Key] = []string{FormatBool(b)}
			}
		case TypeStringArray:
			var vs []string
			for _, v := range p.Values {
				vs = append(vs, v.Text)
			}
			t.Extra[p.Key] = vs
		default:
			v, ok := one()
			if !ok {
				continue
			}
			switch p.Key {
			case "RESOURCE_TYPE":
				rtName = v
			case "VENDOR_ID":
				t.Vendor = v
			case "RT_VERSION":
				t.Version = v
			case "RT_DESCRIPTION":
				t.Description = v
			case "RT_BASEDIR":
				t.BaseDir = v
			case "API_VERSION":
				n, err := strconv.Atoi(v)
				if err != nil || n < 1 {
					c.bad(p.Values[0].Pos, "API_VERSION must be a positive integer, not %q", v)
				}
				t.APIVersion = n
			case "INIT_NODES":
				switch strings.ToUpper(v) {
				case "RG_PRIMARIES", "RT_INSTALLED_NODES":
					t.InitNodes = strings.ToUpper(v)
				default:
					c.bad(p.Values[0].Pos, "INIT_NODES must be RG_PRIMARIES or RT_INSTALLED_NODES, not %q", v)
				}
			default:
				t.Extra[p.Key] = []string{v}
			}
		}
	}
	if !validTypeName(rtName) {
		c.bad(f.Props[0].Pos, "RESOURCE_TYPE %q is not a valid name (letters, digits, _ . -)", rtName)
	}
	t.Name = rtName
	if t.Vendor != "" {
		t.Name = t.Vendor + "." + rtName
	}
	if t.Version == "" {
		c.bad(f.Props[0].Pos, "RT_VERSION is required")
	}
	_, start := t.Methods[MethodStart]
	_, prenet := t.Methods[MethodPrenetStart]
	_, stop := t.Methods[MethodStop]
	_, postnet := t.Methods[MethodPostnetStop]
	if !start && !prenet {
		c.bad(f.Props[0].Pos, "a START (or PRENET_START) method is required")
	}
	if !stop && !postnet {
		c.bad(f.Props[0].Pos, "a STOP (or POSTNET_STOP) method is required")
	}
	if t.BaseDir != "" && !filepath.IsAbs(t.BaseDir) {
		c.bad(seen["RT_BASEDIR"], "RT_BASEDIR %q must be an absolute path", t.BaseDir)
	}
	for m, path := range t.Methods {
		if !filepath.IsAbs(path) {
			if t.BaseDir == "" {
				c.bad(methodPos[m], "%s method %q is relative and there is no RT_BASEDIR", m, path)
				continue
			}
			path = filepath.Join(t.BaseDir, path)
			t.Methods[m] = path
		}
		if _, err := runas.CheckScript(path); err != nil {
			c.bad(methodPos[m], "%s method: %s", m, detail(err, runas.ErrUnsafe))
		}
	}
	// System properties that exist for every resource, and the timeouts of
	// the declared methods; declarations may tighten them.
	t.Props = append(t.Props, alwaysProps...)
	for _, m := range sortedKeys(t.Methods) {
		t.Props = append(t.Props, methodTimeout(m))
	}
	return t
}

// detail is the message of err without the "sentinel: " it starts with.
func detail(err, sentinel error) string {
	return strings.TrimPrefix(err.Error(), sentinel.Error()+": ")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func validTypeName(s string) bool {
	if s == "" || len(s) > 100 {
		return false
	}
	for _, c := range s {
		if !(c == '_' || c == '.' || c == '-' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

func (c *compiler) decls(t *ResourceType, decls []rtr.Decl) {
	seen := map[string]rtr.Pos{}
	for _, d := range decls {
		name := d.Property.Text
		key := strings.ToUpper(name)
		if first, dup := seen[key]; dup {
			c.bad(d.Property.Pos, "property %s declared twice (first at %s)", name, first)
			continue
		}
		seen[key] = d.Property.Pos
		attrs := map[string]rtr.Prop{}
		for _, a := range d.Attrs {
			if !declAttrs[a.Key] {
				c.bad(a.Pos, "unknown attribute %s in the declaration of %s", a.Name, name)
				continue
			}
			attrs[a.Key] = a
		}
		_, ext := attrs["EXTENSION"]
		var spec PropSpec
		if ext {
			spec = c.extension(d, attrs)
		} else {
			base, ok := systemSpec(name, t.Methods)
			if !ok {
				c.bad(d.Property.Pos, "%s is not a system property this type can declare (extension properties need EXTENSION;)", name)
				continue
			}
			for _, kw := range []string{"INT", "BOOLEAN", "STRING", "STRINGARRAY", "DESCRIPTION", "PER_NODE"} {
				if a, ok := attrs[kw]; ok {
					c.bad(a.Pos, "%s is only allowed on extension properties; %s is a system property", a.Name, name)
				}
			}
			if d.Enum != nil {
				c.bad(d.EnumPos, "ENUM is only allowed on extension properties; %s is a system property", name)
			}
			spec = base
		}
		c.limits(&spec, attrs, name)
		if spec.Name == "" {
			continue
		}
		if strings.HasSuffix(strings.ToUpper(spec.Name), "_TIMEOUT") && spec.Min != nil && *spec.Min < 1 && !ext {
			c.bad(attrs["MIN"].Pos, "a method timeout cannot have MIN below 1")
		}
		if spec.HasDefault {
			if err := spec.Check(spec.Default); err != nil {
				c.bad(d.Property.Pos, "the DEFAULT of %s is invalid: %s", name, detail(err, ErrInvalid))
			} else {
				spec.Default = spec.Normalize(spec.Default)
			}
		}
		replaced := false
		for i, p := range t.Props {
			if strings.EqualFold(p.Name, spec.Name) {
				t.Props[i], replaced = spec, true
			}
		}
		if !replaced {
			t.Props = append(t.Props, spec)
		}
	}
}

func (c *compiler) extension(d rtr.Decl, attrs map[string]rtr.Prop) PropSpec {
	name := d.Property.Text
	spec := PropSpec{Name: name, Extension: true, Tunable: TunableAnytime}
	var types []string
	for _, kw := range []string{"INT", "BOOLEAN", "STRING", "STRINGARRAY"} {
		if a, ok := attrs[kw]; ok {
			if !a.Bare {
				c.bad(a.Pos, "%s takes no value", a.Name)
			}
			types = append(types, kw)
			spec.Type = PropType(kw)
		}
	}
	if d.Enum != nil {
		types = append(types, "ENUM")
		spec.Type = TypeEnum
		for _, v := range d.Enum {
			spec.Enum = append(spec.Enum, v.Text)
		}
	}
	switch len(types) {
	case 0:
		c.bad(d.Property.Pos, "extension property %s needs a type: INT, BOOLEAN, STRING, STRINGARRAY or ENUM { ... }", name)
		return PropSpec{}
	case 1:
	default:
		c.bad(d.Property.Pos, "extension property %s has several types: %s", name, strings.Join(types, ", "))
		return PropSpec{}
	}
	if !validTypeName(name) || strings.Contains(name, ".") {
		c.bad(d.Property.Pos, "extension property name %q is not valid (letters, digits, _ -)", name)
	}
	if IsQueryOnly(name) {
		c.bad(d.Property.Pos, "%s is a query-only system property and cannot be an extension", name)
	}
	if a, ok := attrs["DESCRIPTION"]; ok {
		if len(a.Values) != 1 {
			c.bad(a.Pos, "DESCRIPTION takes one quoted string")
		} else {
			spec.Description = a.Values[0].Text
		}
	}
	if a, ok := attrs["PER_NODE"]; ok {
		spec.PerNode = true
		if _, def := attrs["DEFAULT"]; !def {
			c.bad(a.Pos, "a PER_NODE property needs a DEFAULT")
		}
		if spec.Type == TypeStringArray {
			c.bad(a.Pos, "a STRINGARRAY property cannot be PER_NODE")
		}
	}
	return spec
}

// limits applies DEFAULT, MIN, MAX, lengths, array sizes and TUNABLE.
func (c *compiler) limits(spec *PropSpec, attrs map[string]rtr.Prop, name string) {
	intAttr := func(key string) *int {
		a, ok := attrs[key]
		if !ok {
			return nil
		}
		if len(a.Values) != 1 {
			c.bad(a.Pos, "%s takes one integer", a.Name)
			return nil
		}
		n, err := strconv.Atoi(a.Values[0].Text)
		if err != nil {
			c.bad(a.Values[0].Pos, "%s must be an integer, not %q", a.Name, a.Values[0].Text)
			return nil
		}
		return &n
	}
	for key, dst := range map[string]**int{"MIN": &spec.Min, "MAX": &spec.Max, "MINLENGTH": &spec.MinLength,
		"MAXLENGTH": &spec.MaxLength, "ARRAY_MINSIZE": &spec.ArrayMin, "ARRAY_MAXSIZE": &spec.ArrayMax} {
		if v := intAttr(key); v != nil {
			*dst = v
		}
	}
	if (spec.Min != nil || spec.Max != nil) && spec.Type != TypeInt {
		a, ok := attrs["MIN"]
		if !ok {
			a = attrs["MAX"]
		}
		c.bad(a.Pos, "MIN and MAX only apply to INT properties (%s is %s)", name, spec.Type)
	}
	if spec.Min != nil && spec.Max != nil && *spec.Min > *spec.Max {
		c.bad(attrs["MAX"].Pos, "MAX %d is below MIN %d", *spec.Max, *spec.Min)
	}
	if a, ok := attrs["DEFAULT"]; ok {
		if a.Bare {
			if spec.Type != TypeBool {
				c.bad(a.Pos, "DEFAULT needs a value")
			}
			spec.Default = []string{"TRUE"}
		} else {
			spec.Default = nil
			for _, v := range a.Values {
				spec.Default = append(spec.Default, v.Text)
			}
		}
		spec.HasDefault = true
		if (spec.Type == TypeBool || spec.Type == TypeEnum || spec.Type == TypeInt) && len(spec.Default) == 1 && spec.Default[0] == "" {
			c.bad(a.Pos, "an empty DEFAULT is not allowed for a %s property", spec.Type)
		}
	}
	if a, ok := attrs["TUNABLE"]; ok {
		tun := TunableAnytime
		if !a.Bare {
			var valid bool
			if len(a.Values) != 1 {
				c.bad(a.Pos, "TUNABLE takes one value")
			} else if tun, valid = ParseTunable(a.Values[0].Text); !valid {
				c.bad(a.Values[0].Pos, "TUNABLE must be NONE, FALSE, TRUE, ANYTIME, AT_CREATION or WHEN_DISABLED, not %q", a.Values[0].Text)
			}
		}
		spec.Tunable = tun
	}
}
