package modules

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/steady-ha/steady/internal/dr"
	"github.com/steady-ha/steady/internal/rcm"
	"golang.org/x/sys/unix"
)

// Filesys refuses to let a block device go while a filesystem on it is
// mounted or it holds swap, directly or through a device stacked on it
// (device-mapper, md, LVM). Force overrides it, except for the root
// filesystem: taking that away never ends well.
type Filesys struct {
	Proc string // "/proc"
	Sys  string // "/sys"

	mu   sync.Mutex
	last map[string][]use // what the last Register read
}

// Name is "filesys".
func (f *Filesys) Name() string { return "filesys" }

// use is one way a block device is in use.
type use struct {
	what string
	root bool
}

// Register names every block device in use, by its /sys/devices path.
func (f *Filesys) Register(ctx context.Context) ([]rcm.Interest, error) {
	uses, err := f.uses()
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.last = uses
	f.mu.Unlock()
	ins := make([]rcm.Interest, 0, len(uses))
	for p := range uses {
		ins = append(ins, rcm.Interest{Name: p, Kind: rcm.KindDR})
	}
	sort.Slice(ins, func(i, j int) bool { return ins[i].Name < ins[j].Name })
	return ins, nil
}

// Call answers for one device from what Register read: being Live, the
// module registered right before the operation, and an operation of many
// devices does not read mountinfo and the holders once per device.
func (f *Filesys) Call(ctx context.Context, c rcm.Call) (string, error) {
	f.mu.Lock()
	uses := f.last
	f.mu.Unlock()
	if uses == nil {
		var err error
		if uses, err = f.uses(); err != nil {
			return "", err
		}
	}
	us := uses[c.Resource]
	var whats []string
	root := false
	for _, u := range us {
		whats = append(whats, u.what)
		root = root || u.root
	}
	text := strings.Join(whats, "; ")
	switch c.Op {
	case rcm.OpInfo:
		return text, nil
	case rcm.OpOffline, rcm.OpSuspend:
		if len(us) == 0 {
			return "", nil // not in use any more
		}
		if root {
			return "", fmt.Errorf("it holds the root filesystem (%s); not even force takes that away", text)
		}
		if c.Flags&rcm.Force == 0 {
			return "", fmt.Errorf("in use: %s (unmount it, or force)", text)
		}
	}
	return "", nil
}

// uses maps each block device in use onto its uses.
func (f *Filesys) uses() (map[string][]use, error) {
	direct := map[string][]use{}
	if err := f.mounts(direct); err != nil {
		return nil, err
	}
	if err := f.swaps(direct); err != nil {
		return nil, err
	}
	holders, names := f.holders()
	out := map[string][]use{}
	var collect func(p string, depth int) []use
	collect = func(p string, depth int) []use {
		us := append([]use(nil), direct[p]...)
		if depth > 8 {
			return us
		}
		for _, h := range holders[p] {
			hu := collect(h, depth+1)
			if len(hu) == 0 {
				us = append(us, use{what: "held by " + names[h]})
			}
			for _, u := range hu {
				us = append(us, use{what: names[h] + " " + u.what, root: u.root})
			}
		}
		return us
	}
	all := map[string]bool{}
	for p := range direct {
		all[p] = true
	}
	for p := range holders {
		all[p] = true
	}
	for p := range all {
		if us := collect(p, 0); len(us) > 0 {
			out[p] = us
		}
	}
	return out, nil
}

// mounts reads the mounted block devices from mountinfo.
func (f *Filesys) mounts(into map[string][]use) error {
	file, err := os.Open(f.Proc + "/self/mountinfo")
	if err != nil {
		return fmt.Errorf("filesys: %w", err)
	}
	defer file.Close()
	sc := bufio.NewScanner(file)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for line := 1; sc.Scan(); line++ {
		fields := strings.Fields(sc.Text())
		sep := -1
		for i, x := range fields {
			if x == "-" {
				sep = i
				break
			}
		}
		if len(fields) < 7 || sep < 6 || sep+2 >= len(fields) {
			return fmt.Errorf("filesys: %s/self/mountinfo line %d: malformed", f.Proc, line)
		}
		maj, min, ok := strings.Cut(fields[2], ":")
		if !ok {
			return fmt.Errorf("filesys: %s/self/mountinfo line %d: device %q is not MAJOR:MINOR", f.Proc, line, fields[2])
		}
		ma, err1 := strconv.ParseUint(maj, 10, 32)
		mi, err2 := strconv.ParseUint(min, 10, 32)
		if err1 != nil || err2 != nil {
			return fmt.Errorf("filesys: %s/self/mountinfo line %d: device %q is not MAJOR:MINOR", f.Proc, line, fields[2])
		}
		if ma == 0 {
			continue // no block device behind it (tmpfs, proc, overlay)
		}
		p, ok := dr.BlockPath(f.Sys, unix.Mkdev(uint32(ma), uint32(mi)))
		if !ok {
			continue
		}
		mnt := unescape(fields[4])
		into[p] = append(into[p], use{what: fmt.Sprintf("mounted on %s (%s)", mnt, fields[sep+1]), root: mnt == "/"})
	}
	return sc.Err()
}

// swaps reads the swap partitions.
func (f *Filesys) swaps(into map[string][]use) error {
	b, err := os.ReadFile(f.Proc + "/swaps")
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("filesys: %w", err)
	}
	for i, line := range strings.Split(string(b), "\n") {
		fields := strings.Fields(line)
		if i == 0 || len(fields) < 2 || fields[1] != "partition" {
			continue // the header, or a swap file (its filesystem is mounted)
		}
		name := unescape(fields[0])
		var st unix.Stat_t
		if err := unix.Stat(name, &st); err != nil {
			continue
		}
		if p, ok := dr.BlockPath(f.Sys, st.Rdev); ok {
			into[p] = append(into[p], use{what: "swap space " + name})
		}
	}
	return nil
}

// holders maps each block device (and partition) onto the devices
// stacked on it, and names those.
func (f *Filesys) holders() (map[string][]string, map[string]string) {
	out := map[string][]string{}
	names := map[string]string{}
	disks, _ := os.ReadDir(f.Sys + "/block")
	for _, d := range disks {
		dirs := []string{"block/" + d.Name()}
		if parts, err := os.ReadDir(f.Sys + "/block/" + d.Name()); err == nil {
			for _, p := range parts {
				if strings.HasPrefix(p.Name(), d.Name()) {
					dirs = append(dirs, "block/"+d.Name()+"/"+p.Name())
				}
			}
		}
		for _, rel := range dirs {
			hs, err := os.ReadDir(f.Sys + "/" + rel + "/holders")
			if err != nil || len(hs) == 0 {
				continue
			}
			p, ok := dr.SysPath(f.Sys, rel)
			if !ok {
				continue
			}
			for _, h := range hs {
				hp, ok := dr.SysPath(f.Sys, "block/"+h.Name())
				if !ok {
					continue
				}
				out[p] = append(out[p], hp)
				name := h.Name()
				if dm, err := os.ReadFile(f.Sys + "/block/" + h.Name() + "/dm/name"); err == nil {
					name += " (" + strings.TrimSpace(string(dm)) + ")"
				}
				names[hp] = name
			}
		}
	}
	return out, names
}

// unescape undoes the octal escapes of mountinfo and swaps (\040 for a
// space).
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// Live: its names are read afresh before every operation.
func (*Filesys) Live() {}
