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

// The runtime state is kept in DATA_DIR/rgm/state as a snapshot
// (state.json) and a log of what each step changed since (state.log, one
// JSON line per step). A step appends one line with a single write: on
// ext4 replacing a file by rename costs more than half a millisecond (the
// file system flushes the new file first), which made saving the steps of
// thousands of groups starting take seconds, while an append costs
// microseconds. When the log has grown past twice the snapshot (and a
// few megabytes) the snapshot is rewritten and the log emptied. Lines
// carry a sequence number and the snapshot the last one it includes, so
// a crash between writing the snapshot and emptying the log replays
// nothing twice. A line cut short by a crash of the process is the last
// one and is ignored; nothing is synced, as after a crash of the machine
// the state is discarded anyway (the boot id changed).
//
// Earlier versions kept one file per resource and group (meta.json,
// r-NAME.json, g-NAME.json); they are read once and replaced by a
// snapshot.

const (
	snapshotFile = "state.json"
	logFile      = "state.log"
	minLogBytes  = 4 << 20
)

type stateMeta struct {
	Schema int    `json:"schema"`
	NextID uint64 `json:"next_id"`
}

// stateSnapshot is state.json.
type stateSnapshot struct {
	Schema    int                        `json:"schema"`
	Seq       uint64                     `json:"seq"`
	NextID    uint64                     `json:"next_id"`
	Resources map[string]json.RawMessage `json:"resources"`
	Groups    map[string]json.RawMessage `json:"groups"`
}

// stateLine is one line of state.log: the resources and groups a step
// changed (null for one that is gone).
type stateLine struct {
	Seq       uint64                     `json:"seq"`
	NextID    uint64                     `json:"next_id"`
	Resources map[string]json.RawMessage `json:"r,omitempty"`
	Groups    map[string]json.RawMessage `json:"g,omitempty"`
}

func (m *Manager) stateDir() string { return filepath.Join(m.opts.Dir, "state") }

// loadState reads the saved runtime state.
func (m *Manager) loadState() (machine.Snapshot, error) {
	snap := machine.Snapshot{Schema: machine.SnapshotSchema}
	res, groups := map[string]json.RawMessage{}, map[string]json.RawMessage{}
	var nextID, seq uint64
	dir := m.stateDir()
	data, err := os.ReadFile(filepath.Join(dir, snapshotFile))
	switch {
	case err == nil:
		var ss stateSnapshot
		if err := json.Unmarshal(data, &ss); err != nil {
			return snap, fmt.Errorf("rgm: state file %s: %w", filepath.Join(dir, snapshotFile), err)
		}
		if ss.Schema != machine.SnapshotSchema {
			return snap, fmt.Errorf("rgm: state file %s has schema %d; this steady reads %d", filepath.Join(dir, snapshotFile), ss.Schema, machine.SnapshotSchema)
		}
		for k, v := range ss.Resources {
			res[k] = v
		}
		for k, v := range ss.Groups {
			groups[k] = v
		}
		nextID, seq = ss.NextID, ss.Seq
	case os.IsNotExist(err):
		if nextID, err = loadLegacyState(dir, res, groups); err != nil {
			return snap, err
		}
	default:
		return snap, fmt.Errorf("rgm: %w", err)
	}
	if data, err := os.ReadFile(filepath.Join(dir, logFile)); err == nil {
		lines := strings.Split(string(data), "\n")
		for i, l := range lines {
			if l == "" {
				continue
			}
			var sl stateLine
			if err := json.Unmarshal([]byte(l), &sl); err != nil {
				if i == len(lines)-1 {
					m.log.Warn("the last line of the state log is incomplete (the agent stopped while writing it); it is ignored",
						"file", filepath.Join(dir, logFile), "line", i+1)
					break
				}
				return snap, fmt.Errorf("rgm: state log %s, line %d: %w", filepath.Join(dir, logFile), i+1, err)
			}
			if sl.Seq <= seq {
				continue // in the snapshot already
			}
			seq, nextID = sl.Seq, sl.NextID
			for k, v := range sl.Resources {
				if string(v) == "null" {
					delete(res, k)
				} else {
					res[k] = v
				}
			}
			for k, v := range sl.Groups {
				if string(v) == "null" {
					delete(groups, k)
				} else {
					groups[k] = v
				}
			}
		}
	} else if !os.IsNotExist(err) {
		return snap, fmt.Errorf("rgm: %w", err)
	}
	m.stateSeq = seq
	// Through the machine's own JSON, so the types stay its business.
	whole, _ := json.Marshal(map[string]any{"schema": machine.SnapshotSchema, "next_id": nextID,
		"resources": res, "groups": groups})
	if err := json.Unmarshal(whole, &snap); err != nil {
		return snap, fmt.Errorf("rgm: runtime state in %s: %w", dir, err)
	}
	return snap, nil
}

// loadLegacyState reads the one-file-per-object state of earlier
// versions.
func loadLegacyState(dir string, res, groups map[string]json.RawMessage) (uint64, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return 0, fmt.Errorf("rgm: %w", err)
	}
	var nextID uint64
	for _, p := range files {
		data, err := os.ReadFile(p)
		if err != nil {
			return 0, fmt.Errorf("rgm: %w", err)
		}
		switch base := strings.TrimSuffix(filepath.Base(p), ".json"); {
		case base == "meta":
			var meta stateMeta
			if err := json.Unmarshal(data, &meta); err != nil {
				return 0, fmt.Errorf("rgm: state file %s: %w", p, err)
			}
			if meta.Schema != machine.SnapshotSchema {
				return 0, fmt.Errorf("rgm: state file %s has schema %d; this steady reads %d", p, meta.Schema, machine.SnapshotSchema)
			}
			nextID = meta.NextID
		case strings.HasPrefix(base, "r-"):
			res[base[2:]] = data
		case strings.HasPrefix(base, "g-"):
			groups[base[2:]] = data
		}
	}
	return nextID, nil
}

// saveState saves what changed since the last save: a line appended to
// the log, or, at the first save and when the log has grown, a new
// snapshot. Only what the machine reports changed is encoded
// (machine.Saved).
func (m *Manager) saveState() error {
	snap := m.mach.Snapshot()
	if m.savedCopy.Empty() || m.logBytes > max(minLogBytes, 2*m.snapBytes) {
		return m.writeSnapshot(snap)
	}
	res, groups, goneRes, goneGroups := m.mach.Changed(m.savedCopy)
	if len(res)+len(groups)+len(goneRes)+len(goneGroups) == 0 && snap.NextID == m.savedNextID {
		return nil
	}
	line := stateLine{Seq: m.stateSeq + 1, NextID: snap.NextID, Resources: map[string]json.RawMessage{}, Groups: map[string]json.RawMessage{}}
	for _, name := range res {
		b, err := json.Marshal(snap.Resources[name])
		if err != nil {
			return err
		}
		line.Resources[name] = b
	}
	for _, name := range groups {
		b, err := json.Marshal(snap.Groups[name])
		if err != nil {
			return err
		}
		line.Groups[name] = b
	}
	for _, name := range goneRes {
		line.Resources[name] = json.RawMessage("null")
	}
	for _, name := range goneGroups {
		line.Groups[name] = json.RawMessage("null")
	}
	b, err := json.Marshal(line)
	if err != nil {
		return err
	}
	if err := m.appendLog(append(b, '\n')); err != nil {
		// What was not written goes into the next snapshot.
		m.savedCopy = machine.NewSaved()
		return err
	}
	m.stateSeq, m.savedNextID = line.Seq, snap.NextID
	return nil
}

// appendLog appends one line to the state log with a single write.
func (m *Manager) appendLog(b []byte) error {
	if m.logf == nil {
		f, err := os.OpenFile(filepath.Join(m.stateDir(), logFile), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
		if err != nil {
			return fmt.Errorf("rgm: state log: %w", err)
		}
		m.logf = f
	}
	if _, err := m.logf.Write(b); err != nil {
		m.logf.Close()
		m.logf = nil
		return fmt.Errorf("rgm: state log: %w", err)
	}
	m.logBytes += len(b)
	return nil
}

// writeSnapshot writes the whole state as the snapshot and empties the
// log.
func (m *Manager) writeSnapshot(snap machine.Snapshot) error {
	ss := stateSnapshot{Schema: machine.SnapshotSchema, Seq: m.stateSeq, NextID: snap.NextID,
		Resources: make(map[string]json.RawMessage, len(snap.Resources)), Groups: make(map[string]json.RawMessage, len(snap.Groups))}
	for name, rs := range snap.Resources {
		b, err := json.Marshal(rs)
		if err != nil {
			return err
		}
		ss.Resources[name] = b
	}
	for name, gs := range snap.Groups {
		b, err := json.Marshal(gs)
		if err != nil {
			return err
		}
		ss.Groups[name] = b
	}
	b, err := json.Marshal(ss)
	if err != nil {
		return err
	}
	dir := m.stateDir()
	if err := atomicfile.Replace(filepath.Join(dir, snapshotFile), b, 0o640); err != nil {
		return err
	}
	// Only now may the log go: until the snapshot is in place, the lines
	// it includes are still needed.
	if m.logf != nil {
		m.logf.Close()
		m.logf = nil
	}
	if err := atomicfile.Replace(filepath.Join(dir, logFile), nil, 0o640); err != nil {
		return err
	}
	m.snapBytes, m.logBytes, m.savedNextID = len(b), 0, snap.NextID
	// The machine's state as it is now is what was saved.
	m.savedCopy = machine.NewSaved()
	m.mach.Changed(m.savedCopy)
	// Files of the one-file-per-object layout, once replaced.
	if old, _ := filepath.Glob(filepath.Join(dir, "[rg]-*.json")); len(old) > 0 {
		for _, p := range old {
			os.Remove(p)
		}
		os.Remove(filepath.Join(dir, "meta.json"))
	}
	return nil
}
