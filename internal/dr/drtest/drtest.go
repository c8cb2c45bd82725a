// Package drtest builds synthetic sysfs trees for the tests and
// benchmarks of dynamic reconfiguration: hundreds of CPUs and thousands
// of memory blocks that no test machine has.
package drtest

import (
	"fmt"
	"os"
	"path/filepath"
)

// Synthetic builds, under root, a sysfs tree with cpus CPUs (cpu0 without
// an online file, as on x86) and blocks memory blocks of 128 MiB, the
// first eight of which the kernel could not offline.
func Synthetic(root string, cpus, blocks int) error {
	cpuDir := filepath.Join(root, "devices/system/cpu")
	for i := 0; i < cpus; i++ {
		d := filepath.Join(cpuDir, fmt.Sprintf("cpu%d", i))
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
		if i > 0 {
			if err := os.WriteFile(filepath.Join(d, "online"), []byte("1\n"), 0o644); err != nil {
				return err
			}
		}
	}
	if err := os.WriteFile(filepath.Join(cpuDir, "online"), []byte(fmt.Sprintf("0-%d\n", cpus-1)), 0o644); err != nil {
		return err
	}
	memDir := filepath.Join(root, "devices/system/memory")
	if err := os.MkdirAll(memDir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(memDir, "block_size_bytes"), []byte("8000000\n"), 0o644); err != nil {
		return err
	}
	for i := 0; i < blocks; i++ {
		d := filepath.Join(memDir, fmt.Sprintf("memory%d", i))
		if err := os.Mkdir(d, 0o755); err != nil {
			return err
		}
		zones := "Normal Movable"
		if i < 8 {
			zones = "none"
		}
		for name, v := range map[string]string{"state": "online\n", "valid_zones": zones + "\n", "removable": "1\n"} {
			if err := os.WriteFile(filepath.Join(d, name), []byte(v), 0o644); err != nil {
				return err
			}
		}
	}
	return nil
}

// TempDir makes a directory for a synthetic tree on tmpfs when the
// machine has /dev/shm: sysfs lives in memory too, and a tree of 50,000
// files on a disk filesystem takes minutes to create and remove.
func TempDir() (string, error) {
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		if d, err := os.MkdirTemp("/dev/shm", "steady-sysfs-"); err == nil {
			return d, nil
		}
	}
	return os.MkdirTemp("", "steady-sysfs-")
}
