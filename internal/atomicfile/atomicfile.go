// Package atomicfile replaces small state files so that a crash at any
// moment leaves either the old or the new content, never a mix: the data
// goes to a temporary file in the same directory, is synced, renamed over
// the target, and the directory is synced.
package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"
)

// Write replaces path with data, creating it with perm if needed.
func Write(path string, data []byte, perm os.FileMode) error { return write(path, data, perm, true) }

// Replace is Write without the syncs: the file is whole after a crash of
// the process, and may be old or missing after a crash of the machine. For
// state that a reboot makes worthless anyway, written too often to pay for
// two syncs each time.
func Replace(path string, data []byte, perm os.FileMode) error { return write(path, data, perm, false) }

func write(path string, data []byte, perm os.FileMode, sync bool) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("atomicfile: %w", err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("atomicfile: writing %s: %w", path, err)
	}
	if err = f.Chmod(perm); err != nil {
		return fmt.Errorf("atomicfile: %w", err)
	}
	if sync {
		if err = f.Sync(); err != nil {
			return fmt.Errorf("atomicfile: syncing %s: %w", path, err)
		}
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("atomicfile: %w", err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("atomicfile: %w", err)
	}
	if !sync {
		return nil
	}
	return SyncDir(dir)
}

// SyncDir makes the entries of dir (creations, renames, removals) durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("atomicfile: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("atomicfile: syncing directory %s: %w", dir, err)
	}
	return nil
}
