package dr

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// DevicePath is the rcm engine's Canon on this machine: a device node
// (/dev/sdb1, /dev/loop0) or a /sys/class, /sys/block or /sys/bus link
// becomes its /sys/devices path, so that a disk contains its partitions
// and a PCI function its disks and interfaces. Any other name comes back
// unchanged.
func DevicePath(name string) string {
	return devicePath("/sys", "/dev", name)
}

func devicePath(sysRoot, devRoot, name string) string {
	switch {
	case strings.HasPrefix(name, devRoot+"/"):
		var st unix.Stat_t
		if err := unix.Stat(name, &st); err != nil {
			return name
		}
		kind := ""
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFBLK:
			kind = "block"
		case unix.S_IFCHR:
			kind = "char"
		default:
			return name
		}
		p, ok := SysPath(sysRoot, fmt.Sprintf("dev/%s/%d:%d", kind, unix.Major(st.Rdev), unix.Minor(st.Rdev)))
		if !ok {
			return name
		}
		return p
	case strings.HasPrefix(name, "/sys/") && !strings.HasPrefix(name, "/sys/devices/"):
		if p, ok := SysPath(sysRoot, strings.TrimPrefix(name, "/sys/")); ok {
			return p
		}
	}
	return name
}

// SysPath resolves rel under the sysfs root and names the result as it
// would be under /sys, whatever the root (tests use a synthetic tree).
func SysPath(root, rel string) (string, bool) {
	rootReal, err := filepath.EvalSymlinks(root)
	if err != nil {
		return "", false
	}
	p, err := filepath.EvalSymlinks(filepath.Join(root, rel))
	if err != nil {
		return "", false
	}
	rest, ok := strings.CutPrefix(p, rootReal)
	if !ok || (rest != "" && rest[0] != '/') {
		return "", false
	}
	return "/sys" + rest, true
}

// BlockPath is the /sys/devices path of a block device number.
func BlockPath(root string, dev uint64) (string, bool) {
	return SysPath(root, fmt.Sprintf("dev/block/%d:%d", unix.Major(dev), unix.Minor(dev)))
}

// exists reports whether path exists.
func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}
