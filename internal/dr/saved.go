package dr

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/steady-ha/steady/internal/atomicfile"
)

// Saved keeps what drivers need to give an AP back after it has gone
// from the system: a NIC's addresses and routes, a loop device's backing
// file, the bus a removed PCI function sat on. It is a file in the data
// dir, so an AP unconfigured before an agent restart can still be
// configured after it.
type Saved struct {
	path string
	mu   sync.Mutex
	m    map[string]json.RawMessage
}

const savedSchema = 1

type savedFile struct {
	Schema int                        `json:"schema"`
	APs    map[string]json.RawMessage `json:"aps"`
}

// OpenSaved reads path ("" keeps everything in memory).
func OpenSaved(path string) (*Saved, error) {
	s := &Saved{path: path, m: map[string]json.RawMessage{}}
	if path == "" {
		return s, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("dr: %w", err)
	}
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("dr: reading saved configurations: %w", err)
	}
	var f savedFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("dr: %s: %w", path, err)
	}
	if f.Schema != savedSchema {
		return nil, fmt.Errorf("dr: %s: schema %d, this steady reads %d", path, f.Schema, savedSchema)
	}
	if f.APs != nil {
		s.m = f.APs
	}
	return s, nil
}

// Put records v for the AP id, durably.
func (s *Saved) Put(id string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[id] = b
	return s.flush()
}

// Get reads what was recorded for id into v.
func (s *Saved) Get(id string, v any) bool {
	s.mu.Lock()
	b, ok := s.m[id]
	s.mu.Unlock()
	return ok && json.Unmarshal(b, v) == nil
}

// IDs lists the APs with something recorded.
func (s *Saved) IDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.m))
	for id := range s.m {
		out = append(out, id)
	}
	return out
}

// Delete forgets id.
func (s *Saved) Delete(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[id]; !ok {
		return nil
	}
	delete(s.m, id)
	return s.flush()
}

func (s *Saved) flush() error {
	if s.path == "" {
		return nil
	}
	b, err := json.MarshalIndent(savedFile{Schema: savedSchema, APs: s.m}, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(s.path, b, 0o600); err != nil {
		return fmt.Errorf("dr: saving configurations: %w", err)
	}
	return nil
}
