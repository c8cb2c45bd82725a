package dr

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Loops are the APs blk/loopN of loop devices that are attached, or that
// steady detached and can attach again. Unconfigure records the backing
// file and its parameters, then detaches; configure attaches the same
// file with the same parameters.
type Loops struct {
	Root  string // the sysfs root
	Dev   string // where the device nodes are ("/dev")
	Saved *Saved
}

// Class is "blk".
func (l Loops) Class() string { return "blk" }

type loopSaved struct {
	File      string `json:"file"`
	Offset    uint64 `json:"offset"`
	SizeLimit uint64 `json:"sizelimit"`
	ReadOnly  bool   `json:"read_only"`
	PartScan  bool   `json:"partscan"`
}

// List reads the loop devices.
func (l Loops) List(ctx context.Context) ([]AP, error) {
	ids, err := numbered(join(l.Root, "block"), "loop")
	if err != nil && !os.IsNotExist(err) {
		return nil, fmt.Errorf("dr: listing loop devices: %w", err)
	}
	var out []AP
	for _, n := range ids {
		if ap, ok := l.read(n); ok {
			out = append(out, ap)
		}
	}
	return out, nil
}

// Get reads one loop device.
func (l Loops) Get(ctx context.Context, id string) (AP, error) {
	rest, ok := strings.CutPrefix(id, "blk/loop")
	n, err := strconv.Atoi(rest)
	if !ok || err != nil || strconv.Itoa(n) != rest {
		return AP{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	ap, ok := l.read(n)
	if !ok {
		return AP{}, fmt.Errorf("%w: %s (loop%d has no backing file)", ErrNotFound, id, n)
	}
	return ap, nil
}

// read describes loopN; an idle device that steady did not detach is
// not an attachment point of anything.
func (l Loops) read(n int) (AP, bool) {
	name := "loop" + strconv.Itoa(n)
	dir := join(l.Root, "block", name)
	ap := AP{ID: "blk/" + name, Type: "loop", Class: "blk", Receptacle: Connected, Occupant: Configured,
		Condition: CondOK, StatusTime: statusTime(dir)}
	if r, ok := SysPath(l.Root, "block/"+name); ok {
		ap.PhysID = r
		ap.Resources = []string{r}
	}
	if file, err := readTrim(join(dir, "loop", "backing_file")); err == nil && file != "" {
		ap.Info = "backing file " + file
		if strings.HasSuffix(file, " (deleted)") {
			ap.Condition = CondFailing
		}
		return ap, true
	}
	var s loopSaved
	if !l.Saved.Get(ap.ID, &s) {
		return AP{}, false
	}
	ap.Occupant, ap.Condition = Unconfigured, CondUnknown
	ap.Info = "detached from " + s.File
	if _, err := os.Stat(s.File); err != nil {
		ap.Condition = CondFailed
		ap.Info += " (missing)"
	}
	return ap, true
}

// Test checks that the backing file is still there.
func (l Loops) Test(ctx context.Context, ap AP) (string, error) {
	n, _ := strconv.Atoi(strings.TrimPrefix(ap.ID, "blk/loop"))
	now, ok := l.read(n)
	if !ok {
		return CondUnknown, fmt.Errorf("%w: %s", ErrNotFound, ap.ID)
	}
	return now.Condition, nil
}

func (l Loops) node(ap AP) string { return l.Dev + "/" + strings.TrimPrefix(ap.ID, "blk/") }

// Unconfigure records the backing file and detaches it. The device is
// opened exclusively first: the kernel only defers a detach of a device
// someone holds (a mount, a device-mapper table), and a deferred detach
// would be a lie to the user.
func (l Loops) Unconfigure(ctx context.Context, ap AP) error {
	dir := join(l.Root, "block", strings.TrimPrefix(ap.ID, "blk/"))
	var s loopSaved
	var err error
	if s.File, err = readTrim(join(dir, "loop", "backing_file")); err != nil {
		return fmt.Errorf("%w: %s has no backing file: %w", ErrState, ap.ID, err)
	}
	off, _ := readTrim(join(dir, "loop", "offset"))
	lim, _ := readTrim(join(dir, "loop", "sizelimit"))
	ro, _ := readTrim(join(dir, "ro"))
	ps, _ := readTrim(join(dir, "loop", "partscan"))
	s.Offset, _ = strconv.ParseUint(off, 10, 64)
	s.SizeLimit, _ = strconv.ParseUint(lim, 10, 64)
	s.ReadOnly, s.PartScan = ro == "1", ps == "1"
	fd, err := unix.Open(l.node(ap), unix.O_RDONLY|unix.O_EXCL|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("%w: %s is in use (mounted, or held by another device): %w", ErrDriver, l.node(ap), err)
		}
		return fmt.Errorf("%w: opening %s: %w", ErrDriver, l.node(ap), err)
	}
	defer unix.Close(fd)
	if err := l.Saved.Put(ap.ID, s); err != nil {
		return err
	}
	if err := unix.IoctlSetInt(fd, unix.LOOP_CLR_FD, 0); err != nil {
		l.Saved.Delete(ap.ID)
		return fmt.Errorf("%w: detaching %s: %w", ErrDriver, l.node(ap), err)
	}
	return nil
}

// Configure attaches the saved backing file again.
func (l Loops) Configure(ctx context.Context, ap AP) error {
	var s loopSaved
	if !l.Saved.Get(ap.ID, &s) {
		return fmt.Errorf("%w: %s was not detached by steady; attach it with losetup", ErrState, ap.ID)
	}
	mode := unix.O_RDWR
	if s.ReadOnly {
		mode = unix.O_RDONLY
	}
	file, err := unix.Open(s.File, mode|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("%w: opening the backing file %s: %w", ErrDriver, s.File, err)
	}
	defer unix.Close(file)
	dev, err := unix.Open(l.node(ap), unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("%w: opening %s: %w", ErrDriver, l.node(ap), err)
	}
	defer unix.Close(dev)
	cfg := unix.LoopConfig{Fd: uint32(file)}
	cfg.Info.Offset, cfg.Info.Sizelimit = s.Offset, s.SizeLimit
	if s.ReadOnly {
		cfg.Info.Flags |= unix.LO_FLAGS_READ_ONLY
	}
	if s.PartScan {
		cfg.Info.Flags |= unix.LO_FLAGS_PARTSCAN
	}
	copy(cfg.Info.File_name[:len(cfg.Info.File_name)-1], s.File)
	if err := unix.IoctlLoopConfigure(dev, &cfg); err != nil {
		return fmt.Errorf("%w: attaching %s to %s: %w", ErrDriver, s.File, l.node(ap), err)
	}
	return l.Saved.Delete(ap.ID)
}
