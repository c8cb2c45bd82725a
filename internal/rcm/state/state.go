// Package state keeps the rcm engine's in-flight list in a file of the
// data dir, written atomically and synced before Save returns, so that
// an agent killed in the middle of an operation finds, at its next
// start, exactly the operations it must finish or undo.
package state

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/steady-ha/steady/internal/atomicfile"
	"github.com/steady-ha/steady/internal/rcm"
)

const schema = 1

type file struct {
	Schema int `json:"schema"`
	rcm.Snapshot
}

// File is an rcm.Store on one file.
type File struct{ path string }

// Open reads the snapshot a previous agent left at path (none is an
// empty one) and returns the store that replaces it.
func Open(path string) (*File, rcm.Snapshot, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, rcm.Snapshot{}, fmt.Errorf("rcm state: %w", err)
	}
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return &File{path}, rcm.Snapshot{}, nil
	}
	if err != nil {
		return nil, rcm.Snapshot{}, fmt.Errorf("rcm state: %w", err)
	}
	var f file
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, rcm.Snapshot{}, fmt.Errorf("rcm state: %s is damaged: %w", path, err)
	}
	if f.Schema != schema {
		return nil, rcm.Snapshot{}, fmt.Errorf("rcm state: %s has schema %d, this steady reads %d", path, f.Schema, schema)
	}
	return &File{path}, f.Snapshot, nil
}

// Save writes the whole list durably.
func (f *File) Save(s rcm.Snapshot) error {
	b, err := json.MarshalIndent(file{Schema: schema, Snapshot: s}, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(f.path, b, 0o600); err != nil {
		return fmt.Errorf("rcm state: %w", err)
	}
	return nil
}
