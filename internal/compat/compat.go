// Package compat holds the registry of compatibility personalities: when
// the steady binary is started under another name (argv[0]), such as
// pmfadm or cfgadm, it behaves as that command, so that existing scripts
// and habits keep working. "steady install-links" creates the symlinks.
//
// The registry is a value built at start-up by the CLI; nothing registers
// itself from package init.
package compat

import (
	"context"
	"io"
	"sort"
)

// Stdio is what a personality reads and writes.
type Stdio struct {
	In       io.Reader
	Out, Err io.Writer
}

// Personality is a command steady can behave as.
type Personality struct {
	Name    string
	Summary string
	// Main runs the command with its arguments (without argv[0]) and
	// returns the exit status that command would return.
	Main func(ctx context.Context, args []string, stdio Stdio) int
}

// Registry maps command names to personalities.
type Registry struct {
	byName map[string]Personality
}

// NewRegistry builds a registry; a duplicate name is a programming error.
func NewRegistry(ps ...Personality) *Registry {
	r := &Registry{byName: make(map[string]Personality, len(ps))}
	for _, p := range ps {
		if _, dup := r.byName[p.Name]; dup {
			panic("compat: personality " + p.Name + " registered twice")
		}
		r.byName[p.Name] = p
	}
	return r
}

// Lookup finds the personality for a command name.
func (r *Registry) Lookup(name string) (Personality, bool) {
	p, ok := r.byName[name]
	return p, ok
}

// All returns the personalities sorted by name.
func (r *Registry) All() []Personality {
	out := make([]Personality, 0, len(r.byName))
	for _, p := range r.byName {
		out = append(out, p)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Name < out[b].Name })
	return out
}
