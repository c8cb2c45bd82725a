// Package ocf speaks the OCF resource agent API 1.1, so that the agents of
// Debian's resource-agents package run unmodified: finding an agent
// (ocf:PROVIDER:AGENT under $OCF_ROOT/resource.d), reading its meta-data,
// building the environment agents expect, and classifying exit codes.
// Running an action is the method runner's job; this package only says
// what to run and what the result means.
package ocf

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/steady-ha/steady/internal/reaper"
)

// DefaultRoot is OCF_ROOT on Debian.
const DefaultRoot = "/usr/lib/ocf"

// ErrNotFound is wrapped when an agent does not exist.
var ErrNotFound = errors.New("ocf: no such agent")

// ParseName splits "ocf:PROVIDER:AGENT".
func ParseName(name string) (provider, agent string, err error) {
	parts := strings.Split(name, ":")
	if len(parts) != 3 || parts[0] != "ocf" || parts[1] == "" || parts[2] == "" {
		return "", "", fmt.Errorf("ocf: %q is not ocf:PROVIDER:AGENT", name)
	}
	for _, p := range parts[1:] {
		if strings.ContainsAny(p, "/\x00") || strings.HasPrefix(p, ".") {
			return "", "", fmt.Errorf("ocf: %q is not a valid agent name", name)
		}
	}
	return parts[1], parts[2], nil
}

// Path is where an agent lives.
func Path(root, provider, agent string) string {
	return filepath.Join(root, "resource.d", provider, agent)
}

// Find returns the path of an existing, executable agent.
func Find(root, name string) (string, error) {
	provider, agent, err := ParseName(name)
	if err != nil {
		return "", err
	}
	p := Path(root, provider, agent)
	fi, err := os.Stat(p)
	if err != nil {
		return "", fmt.Errorf("%w: %s (looked for %s)", ErrNotFound, name, p)
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		return "", fmt.Errorf("ocf: %s (%s) is not an executable file", name, p)
	}
	return p, nil
}

// List returns the names of the agents under root, sorted.
func List(root string) []string {
	providers, _ := os.ReadDir(filepath.Join(root, "resource.d"))
	var out []string
	for _, pd := range providers {
		if strings.HasPrefix(pd.Name(), ".") {
			continue
		}
		agents, _ := os.ReadDir(filepath.Join(root, "resource.d", pd.Name()))
		for _, a := range agents {
			if !strings.HasPrefix(a.Name(), ".") {
				out = append(out, "ocf:"+pd.Name()+":"+a.Name())
			}
		}
	}
	sort.Strings(out)
	return out
}

// Metadata is what an agent's meta-data action declares.
type Metadata struct {
	Name       string
	Version    string // the agent's own version
	OCFVersion string
	ShortDesc  string
	LongDesc   string
	Params     []Param
	Actions    map[string]Action
}

// Param is one instance parameter.
type Param struct {
	Name       string
	Required   bool
	Unique     bool
	Reloadable bool
	Type       string // boolean, string, integer, select
	Default    string
	HasDefault bool
	Options    []string // for select
	ShortDesc  string
}

// Action is one action with its advised timeout and interval.
type Action struct {
	Name     string
	Timeout  time.Duration
	Interval time.Duration
	Depth    int
}

type xmlMeta struct {
	XMLName    xml.Name `xml:"resource-agent"`
	Name       string   `xml:"name,attr"`
	Version    string   `xml:"version,attr"`
	OCFVersion string   `xml:"version"`
	ShortDesc  string   `xml:"shortdesc"`
	LongDesc   string   `xml:"longdesc"`
	Params     []struct {
		Name       string `xml:"name,attr"`
		Required   string `xml:"required,attr"`
		Unique     string `xml:"unique,attr"`
		Reloadable string `xml:"reloadable,attr"`
		ShortDesc  string `xml:"shortdesc"`
		Content    struct {
			Type    string  `xml:"type,attr"`
			Default *string `xml:"default,attr"`
			Options []struct {
				Value string `xml:"value,attr"`
			} `xml:"option"`
		} `xml:"content"`
	} `xml:"parameters>parameter"`
	Actions []struct {
		Name     string `xml:"name,attr"`
		Timeout  string `xml:"timeout,attr"`
		Interval string `xml:"interval,attr"`
		Depth    string `xml:"depth,attr"`
	} `xml:"actions>action"`
}

// ParseMetadata reads the XML of an agent's meta-data action. agent names
// the agent in errors.
func ParseMetadata(agent string, data []byte) (*Metadata, error) {
	var x xmlMeta
	dec := xml.NewDecoder(strings.NewReader(string(data)))
	dec.Strict = true
	if err := dec.Decode(&x); err != nil {
		return nil, fmt.Errorf("ocf: the meta-data of %s is not valid XML: %w", agent, err)
	}
	m := &Metadata{Name: x.Name, Version: x.Version, OCFVersion: strings.TrimSpace(x.OCFVersion),
		ShortDesc: strings.TrimSpace(x.ShortDesc), LongDesc: strings.TrimSpace(x.LongDesc), Actions: map[string]Action{}}
	if m.Name == "" {
		return nil, fmt.Errorf("ocf: the meta-data of %s has no resource-agent name", agent)
	}
	seen := map[string]bool{}
	for _, p := range x.Params {
		if p.Name == "" || seen[p.Name] {
			return nil, fmt.Errorf("ocf: the meta-data of %s has a parameter without a name, or one twice (%q)", agent, p.Name)
		}
		seen[p.Name] = true
		par := Param{Name: p.Name, Required: p.Required == "1", Unique: p.Unique == "1", Reloadable: p.Reloadable == "1",
			Type: p.Content.Type, ShortDesc: strings.TrimSpace(p.ShortDesc)}
		if par.Type == "" {
			par.Type = "string"
		}
		if p.Content.Default != nil {
			par.Default, par.HasDefault = *p.Content.Default, true
		}
		for _, o := range p.Content.Options {
			par.Options = append(par.Options, o.Value)
		}
		m.Params = append(m.Params, par)
	}
	for _, a := range x.Actions {
		if a.Name == "" {
			continue
		}
		act := Action{Name: a.Name}
		var err error
		if act.Timeout, err = ParseDuration(a.Timeout); err != nil {
			return nil, fmt.Errorf("ocf: the meta-data of %s: action %s: timeout: %w", agent, a.Name, err)
		}
		if act.Interval, err = ParseDuration(a.Interval); err != nil {
			return nil, fmt.Errorf("ocf: the meta-data of %s: action %s: interval: %w", agent, a.Name, err)
		}
		act.Depth, _ = strconv.Atoi(a.Depth)
		// An agent may list monitor twice (two depths); keep the first.
		if _, dup := m.Actions[a.Name]; !dup {
			m.Actions[a.Name] = act
		}
	}
	for _, need := range []string{"start", "stop", "monitor"} {
		if _, ok := m.Actions[need]; !ok {
			return nil, fmt.Errorf("ocf: the meta-data of %s declares no %s action", agent, need)
		}
	}
	return m, nil
}

// ParseDuration reads an OCF duration: plain seconds or a number with ms,
// s, m, h or d; empty is zero.
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	units := []struct {
		suffix string
		unit   time.Duration
	}{{"ms", time.Millisecond}, {"s", time.Second}, {"m", time.Minute}, {"h", time.Hour}, {"d", 24 * time.Hour}}
	unit, num := time.Second, s
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			unit, num = u.unit, strings.TrimSuffix(s, u.suffix)
			break
		}
	}
	n, err := strconv.ParseUint(strings.TrimSpace(num), 10, 32)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration (seconds, or a number with ms, s, m, h, d)", s)
	}
	return time.Duration(n) * unit, nil
}

// ReadMetadata runs "AGENT meta-data" through sp (the agent's reaper, so
// that it does not take the exit status from under os/exec) and parses
// what it prints.
func ReadMetadata(ctx context.Context, sp reaper.Spawner, root, name string) (*Metadata, string, error) {
	path, err := Find(root, name)
	if err != nil {
		return nil, "", err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, "meta-data")
	cmd.Env = []string{"OCF_ROOT=" + root, "OCF_RA_VERSION_MAJOR=1", "OCF_RA_VERSION_MINOR=1",
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"}
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := reaper.Run(sp, cmd); err != nil {
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			err = fmt.Errorf("%w: %s", err, msg)
		}
		return nil, path, fmt.Errorf("ocf: %s meta-data failed: %w", name, err)
	}
	m, err := ParseMetadata(name, out.Bytes())
	return m, path, err
}
