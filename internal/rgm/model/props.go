// Package model holds the objects of the resource group manager: resource
// types (from RTR files, OCF agents or built in), their property schemas,
// resources and resource groups, and the rules that check them. It does
// no I/O besides reading the files a type names; it is shared by the
// state machine, the method runner and the configuration service.
//
// Property names are case-insensitive, as in Sun Cluster: Lookup finds
// "retry_count" as "Retry_count". Values are lists of strings (a single
// value is a list of one), typed by their PropSpec.
package model

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// ErrInvalid is wrapped by every validation error of the model.
var ErrInvalid = errors.New("rgm: invalid")

// PropType is the type of a property.
type PropType string

// Property types of rt_reg(4).
const (
	TypeInt         PropType = "INT"
	TypeBool        PropType = "BOOLEAN"
	TypeString      PropType = "STRING"
	TypeStringArray PropType = "STRINGARRAY"
	TypeEnum        PropType = "ENUM"
)

// Tunable says when a property may be changed.
type Tunable string

// Tunability values. FALSE is NONE and TRUE is ANYTIME in RTR files.
const (
	TunableNone         Tunable = "NONE"
	TunableAnytime      Tunable = "ANYTIME"
	TunableAtCreation   Tunable = "AT_CREATION"
	TunableWhenDisabled Tunable = "WHEN_DISABLED"
)

// ParseTunable reads a TUNABLE value of an RTR file.
func ParseTunable(s string) (Tunable, bool) {
	switch strings.ToUpper(s) {
	case "NONE", "FALSE":
		return TunableNone, true
	case "ANYTIME", "TRUE":
		return TunableAnytime, true
	case "AT_CREATION":
		return TunableAtCreation, true
	case "WHEN_DISABLED":
		return TunableWhenDisabled, true
	}
	return "", false
}

// PropSpec declares one property of a resource type or group.
type PropSpec struct {
	Name       string   `json:"name"` // canonical spelling
	Type       PropType `json:"type"`
	Enum       []string `json:"enum,omitempty"`
	Default    []string `json:"default,omitempty"`
	HasDefault bool     `json:"has_default"` // without one, a value is required at creation
	// Optional properties have no default and may stay unset (OCF
	// parameters: the agent applies its own default, shown as AgentDefault).
	Optional     bool    `json:"optional,omitempty"`
	AgentDefault string  `json:"agent_default,omitempty"`
	Min          *int    `json:"min,omitempty"`
	Max          *int    `json:"max,omitempty"`
	MinLength    *int    `json:"min_length,omitempty"`
	MaxLength    *int    `json:"max_length,omitempty"`
	ArrayMin     *int    `json:"array_min,omitempty"`
	ArrayMax     *int    `json:"array_max,omitempty"`
	Tunable      Tunable `json:"tunable"`
	Extension    bool    `json:"extension,omitempty"`
	PerNode      bool    `json:"per_node,omitempty"`
	Description  string  `json:"description,omitempty"`
	// Param is the OCF agent's own name of the parameter when it differs
	// from Name (it would clash with a system property).
	Param string `json:"param,omitempty"`
}

// Check validates v against the spec.
func (p PropSpec) Check(v []string) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: property %s: %s", ErrInvalid, p.Name, fmt.Sprintf(format, args...))
	}
	if p.Type != TypeStringArray && len(v) != 1 {
		return bad("takes exactly one value, got %d", len(v))
	}
	switch p.Type {
	case TypeInt:
		n, err := strconv.Atoi(strings.TrimSpace(v[0]))
		if err != nil {
			return bad("%q is not an integer", v[0])
		}
		if p.Min != nil && n < *p.Min {
			return bad("%d is below the minimum %d", n, *p.Min)
		}
		if p.Max != nil && n > *p.Max {
			return bad("%d is above the maximum %d", n, *p.Max)
		}
	case TypeBool:
		if _, ok := ParseBool(v[0]); !ok {
			return bad("%q is not TRUE or FALSE", v[0])
		}
	case TypeEnum:
		if _, ok := matchEnum(p.Enum, v[0]); !ok {
			return bad("%q is not one of %s", v[0], strings.Join(p.Enum, ", "))
		}
	case TypeString:
		if err := p.checkLength(v[0]); err != nil {
			return bad("%v", err)
		}
	case TypeStringArray:
		if p.ArrayMin != nil && len(v) < *p.ArrayMin {
			return bad("has %d element(s), at least %d are needed", len(v), *p.ArrayMin)
		}
		if p.ArrayMax != nil && len(v) > *p.ArrayMax {
			return bad("has %d element(s), at most %d are allowed", len(v), *p.ArrayMax)
		}
		for _, s := range v {
			if err := p.checkLength(s); err != nil {
				return bad("element %q: %v", s, err)
			}
		}
	default:
		return bad("unknown type %q", p.Type)
	}
	return nil
}

func (p PropSpec) checkLength(s string) error {
	if p.MinLength != nil && len(s) < *p.MinLength {
		return fmt.Errorf("%q is shorter than %d", s, *p.MinLength)
	}
	if p.MaxLength != nil && len(s) > *p.MaxLength {
		return fmt.Errorf("%q is longer than %d", s, *p.MaxLength)
	}
	return nil
}

// Normalize returns v in canonical form: enums in their declared
// spelling, booleans as TRUE/FALSE, integers without blanks.
func (p PropSpec) Normalize(v []string) []string {
	out := append([]string(nil), v...)
	switch p.Type {
	case TypeBool:
		if b, ok := ParseBool(out[0]); ok {
			out[0] = FormatBool(b)
		}
	case TypeEnum:
		if e, ok := matchEnum(p.Enum, out[0]); ok {
			out[0] = e
		}
	case TypeInt:
		out[0] = strings.TrimSpace(out[0])
	}
	return out
}

func matchEnum(enum []string, s string) (string, bool) {
	for _, e := range enum {
		if strings.EqualFold(e, s) {
			return e, true
		}
	}
	return "", false
}

// ParseBool reads TRUE/FALSE (any case), as RTR files and scha_* do.
func ParseBool(s string) (bool, bool) {
	switch strings.ToUpper(strings.TrimSpace(s)) {
	case "TRUE":
		return true, true
	case "FALSE":
		return false, true
	}
	return false, false
}

// FormatBool writes TRUE or FALSE.
func FormatBool(b bool) string {
	if b {
		return "TRUE"
	}
	return "FALSE"
}

// Schema is a set of property specs with case-insensitive lookup.
type Schema []PropSpec

// Lookup finds a property by name, in any case.
func (s Schema) Lookup(name string) (PropSpec, bool) {
	for _, p := range s {
		if strings.EqualFold(p.Name, name) {
			return p, true
		}
	}
	return PropSpec{}, false
}

// Values are property values by canonical name.
type Values map[string][]string

// Get returns the value of name (any case).
func (v Values) Get(name string) ([]string, bool) {
	if x, ok := v[name]; ok {
		return x, true
	}
	for k, x := range v {
		if strings.EqualFold(k, name) {
			return x, true
		}
	}
	return nil, false
}

// Effective merges explicit values over the schema's defaults, in
// canonical names; properties with neither are absent.
func (s Schema) Effective(explicit Values) Values {
	out := Values{}
	for _, p := range s {
		if v, ok := explicit.Get(p.Name); ok {
			out[p.Name] = v
		} else if p.HasDefault {
			out[p.Name] = append([]string(nil), p.Default...)
		}
	}
	return out
}

// Check validates explicit values against the schema: every name must be
// declared and every value valid, and (with creating) every property
// without a default must be given. It returns the values under their
// canonical names and in canonical form.
func (s Schema) Check(explicit Values, creating bool) (Values, error) {
	out := Values{}
	var errs []error
	names := make([]string, 0, len(explicit))
	for k := range explicit {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, name := range names {
		p, ok := s.Lookup(name)
		if !ok {
			errs = append(errs, fmt.Errorf("%w: unknown property %q", ErrInvalid, name))
			continue
		}
		v := explicit[name]
		if err := p.Check(v); err != nil {
			errs = append(errs, err)
			continue
		}
		out[p.Name] = p.Normalize(v)
	}
	if creating {
		for _, p := range s {
			if _, given := out[p.Name]; !given && !p.HasDefault && !p.Optional {
				errs = append(errs, fmt.Errorf("%w: property %s has no default and must be given", ErrInvalid, p.Name))
			}
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// Int reads an INT value, with def when absent or malformed.
func (v Values) Int(name string, def int) int {
	x, ok := v.Get(name)
	if !ok || len(x) == 0 {
		return def
	}
	n, err := strconv.Atoi(strings.TrimSpace(x[0]))
	if err != nil {
		return def
	}
	return n
}

// Bool reads a BOOLEAN value, with def when absent.
func (v Values) Bool(name string, def bool) bool {
	x, ok := v.Get(name)
	if !ok || len(x) == 0 {
		return def
	}
	if b, ok := ParseBool(x[0]); ok {
		return b
	}
	return def
}

// String reads a single value, with def when absent.
func (v Values) String(name, def string) string {
	x, ok := v.Get(name)
	if !ok || len(x) == 0 {
		return def
	}
	return x[0]
}

// List reads a STRINGARRAY value.
func (v Values) List(name string) []string {
	x, _ := v.Get(name)
	return x
}

// ParseAssignment reads NAME=VALUE as given on the command line or in
// YAML: VALUE is split at commas for arrays (a STRINGARRAY needs the
// schema to know; the caller splits with SplitArray).
func ParseAssignment(s string) (string, string, error) {
	name, value, ok := strings.Cut(s, "=")
	if !ok || strings.TrimSpace(name) == "" {
		return "", "", fmt.Errorf("%w: %q is not NAME=VALUE", ErrInvalid, s)
	}
	return strings.TrimSpace(name), value, nil
}

// SplitArray splits a STRINGARRAY given as one string at commas (an empty
// string is an empty array).
func SplitArray(s string) []string {
	if strings.TrimSpace(s) == "" {
		return []string{}
	}
	parts := strings.Split(s, ",")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return parts
}
