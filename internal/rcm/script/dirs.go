package script

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"

	"github.com/steady-ha/steady/api"
	"github.com/steady-ha/steady/internal/rcm"
)

// DefaultDirs are searched for scripts, steady's own first; a name found
// in an earlier directory hides the same name in a later one.
var DefaultDirs = []string{"/etc/steady/rcm/scripts", "/etc/rcm/scripts"}

// Set keeps the engine's script clients in step with the directories.
type Set struct {
	dirs []string
	opts Options
	e    *rcm.Engine

	mu      sync.Mutex         // guards loaded and errs
	loaded  map[string]*Script // by name
	errs    map[string]string  // by path: why a script is not loaded
	current map[string]string  // name -> path
}

// NewSet makes a set for dirs; Reload loads them.
func NewSet(e *rcm.Engine, dirs []string, opts Options) *Set {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Set{dirs: dirs, opts: opts, e: e, loaded: map[string]*Script{}, errs: map[string]string{}}
}

// Reload loads new and changed scripts, drops removed ones, and
// re-registers all. Scripts that fail to load are reported, not fatal.
func (s *Set) Reload(ctx context.Context) error {
	found := map[string]string{}
	var errs []error
	for _, dir := range s.dirs {
		entries, err := os.ReadDir(dir)
		if err != nil {
			if !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, fmt.Errorf("rcm scripts: %w", err))
			}
			continue
		}
		for _, en := range entries {
			if en.IsDir() || en.Name()[0] == '.' {
				continue
			}
			if _, ok := found[en.Name()]; !ok {
				found[en.Name()] = filepath.Join(dir, en.Name())
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.errs = map[string]string{}
	for name, sc := range s.loaded {
		if found[name] != sc.path {
			if err := s.e.RemoveClient(name); err != nil {
				errs = append(errs, err)
				continue
			}
			delete(s.loaded, name)
		}
	}
	names := make([]string, 0, len(found))
	for n := range found {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		path := found[name]
		if sc := s.loaded[name]; sc != nil {
			// Asked to register again: a reload is how an administrator
			// says the script's names changed.
			if err := s.e.Reregister(ctx, name); err != nil {
				s.errs[path] = err.Error()
			}
			continue
		}
		sc, err := Load(ctx, path, s.opts)
		if err != nil {
			s.errs[path] = err.Error()
			s.opts.Logger.Error("rcm script not loaded", "path", path, "err", err)
			continue
		}
		if err := s.e.AddClient(ctx, sc); err != nil {
			s.errs[path] = err.Error()
			continue
		}
		s.loaded[name] = sc
	}
	s.current = found
	return errors.Join(errs...)
}

// List describes every script file found, loaded or not.
func (s *Set) List() []api.RCMScript {
	clients := map[string]rcm.ClientInfo{}
	for _, c := range s.e.Clients() {
		clients[c.Name] = c
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []api.RCMScript{}
	for name, path := range s.current {
		st := api.RCMScript{Name: name, Path: path, Error: s.errs[path]}
		if sc := s.loaded[name]; sc != nil {
			st.Info, st.Timeout = sc.Info, sc.Timeout.String()
			st.Resources = clients[name].Interests
			if e := clients[name].Error; e != "" {
				st.Error = e
			}
		}
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
