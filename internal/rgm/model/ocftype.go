package model

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/steady-ha/steady/internal/rgm/ocf"
)

// OCFClashPrefix starts the property name of an OCF parameter whose own
// name is that of a system property.
const OCFClashPrefix = "ocf_"

// FromOCF builds the type of an OCF agent from its meta-data: each
// parameter becomes an extension property, and the advised timeouts and
// monitor interval become the defaults of the system properties.
func FromOCF(name, path string, m *ocf.Metadata) (*ResourceType, error) {
	provider, _, err := ocf.ParseName(name)
	if err != nil {
		return nil, err
	}
	t := &ResourceType{
		Name: name, Source: SourceOCF, Version: m.Version, Vendor: provider,
		Description: m.ShortDesc, Agent: path, Actions: map[string]OCFAction{}, Registered: time.Now().UTC(),
	}
	for n, a := range m.Actions {
		t.Actions[n] = OCFAction{Timeout: a.Timeout, Interval: a.Interval}
	}
	secs := func(d time.Duration, def int) []string {
		if d <= 0 {
			return []string{strconv.Itoa(def)}
		}
		return []string{strconv.Itoa(int((d + time.Second - 1) / time.Second))}
	}
	timeout := func(prop, action string, def int) PropSpec {
		return PropSpec{Name: prop, Type: TypeInt, Default: secs(m.Actions[action].Timeout, def), HasDefault: true,
			Min: intp(1), Tunable: TunableAnytime, Description: "seconds the " + action + " action may run"}
	}
	t.Props = append(Schema(nil), alwaysProps...)
	t.Props = append(t.Props, timeout("Start_timeout", "start", 20), timeout("Stop_timeout", "stop", 20))
	if _, ok := m.Actions["validate-all"]; ok {
		t.Props = append(t.Props, timeout("Validate_timeout", "validate-all", 20))
	}
	if _, ok := m.Actions["reload"]; ok {
		t.Props = append(t.Props, timeout("Update_timeout", "reload", 20))
	}
	probe := conditionalProps["THOROUGH_PROBE_INTERVAL"]
	probe.Default = secs(m.Actions["monitor"].Interval, 10)
	probeTimeout := conditionalProps["PROBE_TIMEOUT"]
	probeTimeout.Default = secs(m.Actions["monitor"].Timeout, 20)
	t.Props = append(t.Props, conditionalProps["RETRY_COUNT"], conditionalProps["RETRY_INTERVAL"], probe, probeTimeout)
	for _, p := range m.Params {
		if !validEnvName(p.Name) {
			return nil, fmt.Errorf("%w: the agent %s has a parameter %q that is not a valid environment variable name", ErrInvalid, name, p.Name)
		}
		spec := PropSpec{Name: p.Name, Extension: true, Tunable: TunableAnytime, Description: p.ShortDesc,
			Optional: !p.Required, AgentDefault: p.Default}
		if _, clash := t.Props.Lookup(p.Name); clash {
			// Property names ignore case, so the parameter stop_timeout
			// of ocf:heartbeat:anything would be Stop_timeout: it keeps
			// its name towards the agent only.
			spec.Name, spec.Param = OCFClashPrefix+p.Name, p.Name
			if _, still := t.Props.Lookup(spec.Name); still {
				return nil, fmt.Errorf("%w: the agent %s has parameters %q and %q, which steady cannot tell apart", ErrInvalid, name, p.Name, spec.Name)
			}
		}
		switch p.Type {
		case "integer":
			spec.Type = TypeInt
		case "boolean":
			spec.Type = TypeBool
			if b, ok := ocfBool(p.Default); ok {
				spec.AgentDefault = FormatBool(b)
			}
		case "select":
			spec.Type = TypeEnum
			spec.Enum = p.Options
			if len(spec.Enum) == 0 {
				spec.Type = TypeString
			}
		default:
			spec.Type = TypeString
		}
		t.Props = append(t.Props, spec)
	}
	return t, nil
}

// OCFParams turns a resource's extension values into the agent's
// parameters (booleans as true/false).
func (t *ResourceType) OCFParams(v Values) map[string]string {
	out := map[string]string{}
	for _, p := range t.Props {
		if !p.Extension {
			continue
		}
		x, ok := v.Get(p.Name)
		if !ok || len(x) == 0 {
			continue
		}
		val := strings.Join(x, ",")
		if p.Type == TypeBool {
			b, _ := ParseBool(val)
			val = strconv.FormatBool(b)
		}
		name := p.Name
		if p.Param != "" {
			name = p.Param
		}
		out[name] = val
	}
	return out
}

func ocfBool(s string) (bool, bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true", "yes", "1", "on":
		return true, true
	case "false", "no", "0", "off":
		return false, true
	}
	return false, false
}

func validEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || (i > 0 && c >= '0' && c <= '9')) {
			return false
		}
	}
	return true
}
