package rgm

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/steady-ha/steady/internal/atomicfile"
	"github.com/steady-ha/steady/internal/rgm/machine"
	"github.com/steady-ha/steady/internal/rgm/model"
)

// Store keys and the schema versions of what is stored under them.
const (
	typesPrefix     = "rgm/types/"
	groupsPrefix    = "rgm/groups/"
	resourcesPrefix = "rgm/resources/"
	typeSchema      = 1
	groupSchema     = 1
	resourceSchema  = 1
)

func sortStrings(s []string) { sort.Strings(s) }

// loadConfig reads the types, groups and resources from the store.
func (m *Manager) loadConfig(ctx context.Context) (*model.Config, error) {
	cfg := model.NewConfig()
	if m.opts.Store == nil {
		return cfg, nil
	}
	types, _, err := m.opts.Store.List(ctx, typesPrefix)
	if err != nil {
		return nil, fmt.Errorf("rgm: loading types: %w", err)
	}
	for _, it := range types {
		var t model.ResourceType
		if err := it.Decode(&t, typeSchema); err != nil {
			return nil, fmt.Errorf("rgm: %w", err)
		}
		cfg.Types[t.Name] = &t
	}
	groups, _, err := m.opts.Store.List(ctx, groupsPrefix)
	if err != nil {
		return nil, fmt.Errorf("rgm: loading groups: %w", err)
	}
	for _, it := range groups {
		var g model.Group
		if err := it.Decode(&g, groupSchema); err != nil {
			return nil, fmt.Errorf("rgm: %w", err)
		}
		cfg.Groups[g.Name] = &g
	}
	resources, _, err := m.opts.Store.List(ctx, resourcesPrefix)
	if err != nil {
		return nil, fmt.Errorf("rgm: loading resources: %w", err)
	}
	for _, it := range resources {
		var r model.Resource
		if err := it.Decode(&r, resourceSchema); err != nil {
			return nil, fmt.Errorf("rgm: %w", err)
		}
		cfg.Resources[r.Name] = &r
	}
	return cfg, nil
}

// sameConfig reports whether two configurations hold equal objects (a
// configuration read back from the store is a copy of the one committed).
func sameConfig(a, b *model.Config) bool {
	if len(a.Types) != len(b.Types) || len(a.Groups) != len(b.Groups) || len(a.Resources) != len(b.Resources) {
		return false
	}
	same := func(x, y any) bool {
		bx, err1 := json.Marshal(x)
		by, err2 := json.Marshal(y)
		return err1 == nil && err2 == nil && string(bx) == string(by)
	}
	for k, v := range a.Types {
		if w, ok := b.Types[k]; !ok || v != w && !same(v, w) {
			return false
		}
	}
	for k, v := range a.Groups {
		if w, ok := b.Groups[k]; !ok || v != w && !same(v, w) {
			return false
		}
	}
	for k, v := range a.Resources {
		if w, ok := b.Resources[k]; !ok || v != w && !same(v, w) {
			return false
		}
	}
	return true
}

// The runtime state is kept as one file per resource and group (so that a
// step rewrites only what it changed) and a meta file.
type stateMeta struct {
	Schema int    `json:"schema"`
	NextID uint64 `json:"next_id"`
}

func (m *Manager) stateDir() string { return filepath.Join(m.opts.Dir, "state") }

// loadState reads the saved runtime state.
func (m *Manager) loadState() (machine.Snapshot, error) {
	snap := machine.Snapshot{Schema: machine.SnapshotSchema}
	files, err := filepath.Glob(filepath.Join(m.stateDir(), "*.json"))
	if err != nil {
		return snap, fmt.Errorf("rgm: %w", err)
	}
	var parts struct {
		res    map[string]json.RawMessage
		groups map[string]json.RawMessage
	}
	parts.res, parts.groups = map[string]json.RawMessage{}, map[string]json.RawMessage{}
	for _, p := range files {
		data, err := os.ReadFile(p)
		if err != nil {
			return snap, fmt.Errorf("rgm: %w", err)
		}
		base := strings.TrimSuffix(filepath.Base(p), ".json")
		m.saved[filepath.Base(p)] = string(data)
		switch {
		case base == "meta":
			var meta stateMeta
			if err := json.Unmarshal(data, &meta); err != nil {
				return snap, fmt.Errorf("rgm: state file %s: %w", p, err)
			}
			if meta.Schema != machine.SnapshotSchema {
				return snap, fmt.Errorf("rgm: state file %s has schema %d; this steady reads %d", p, meta.Schema, machine.SnapshotSchema)
			}
			snap.NextID = meta.NextID
		case strings.HasPrefix(base, "r-"):
			parts.res[base[2:]] = data
		case strings.HasPrefix(base, "g-"):
			parts.groups[base[2:]] = data
		}
	}
	// Through the machine's own JSON, so the types stay its business.
	whole, _ := json.Marshal(map[string]any{"schema": machine.SnapshotSchema, "next_id": snap.NextID,
		"resources": parts.res, "groups": parts.groups})
	if err := json.Unmarshal(whole, &snap); err != nil {
		return snap, fmt.Errorf("rgm: runtime state in %s: %w", m.stateDir(), err)
	}
	return snap, nil
}

// saveState writes the runtime state files that changed since the last
// save, and removes those of objects that are gone. Only what the machine
// reports changed is encoded (machine.Saved).
func (m *Manager) saveState() error {
	snap := m.mach.Snapshot()
	first := m.savedCopy.Empty()
	res, groups, goneRes, goneGroups := m.mach.Changed(m.savedCopy)
	meta, _ := json.Marshal(stateMeta{Schema: machine.SnapshotSchema, NextID: snap.NextID})
	want := map[string]string{"meta.json": string(meta)}
	for _, name := range res {
		b, err := json.Marshal(snap.Resources[name])
		if err != nil {
			return err
		}
		want["r-"+name+".json"] = string(b)
	}
	for _, name := range groups {
		b, err := json.Marshal(snap.Groups[name])
		if err != nil {
			return err
		}
		want["g-"+name+".json"] = string(b)
	}
	for file, content := range want {
		if m.saved[file] == content {
			continue
		}
		if err := atomicfile.Replace(filepath.Join(m.stateDir(), file), []byte(content), 0o640); err != nil {
			// What was not written is written at the next save.
			m.savedCopy = machine.NewSaved()
			return err
		}
		m.saved[file] = content
	}
	for _, file := range append(prefixed("r-", goneRes), prefixed("g-", goneGroups)...) {
		os.Remove(filepath.Join(m.stateDir(), file))
		delete(m.saved, file)
	}
	if first {
		// Files loaded at the start for objects that are gone since.
		for file := range m.saved {
			base := strings.TrimSuffix(file, ".json")
			_, isRes := snap.Resources[strings.TrimPrefix(base, "r-")]
			_, isGroup := snap.Groups[strings.TrimPrefix(base, "g-")]
			if file != "meta.json" && !(strings.HasPrefix(base, "r-") && isRes) && !(strings.HasPrefix(base, "g-") && isGroup) {
				os.Remove(filepath.Join(m.stateDir(), file))
				delete(m.saved, file)
			}
		}
	}
	return nil
}

func prefixed(prefix string, names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = prefix + n + ".json"
	}
	return out
}
