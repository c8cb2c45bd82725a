package dr

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// PCI are the APs pci/DDDD:BB:DD.F, one per PCI function. Unconfigure
// removes the function (the kernel unbinds its driver and deletes it and
// everything below it); configure rescans the bus it sat on, which the
// saved state remembers, since the function is gone from sysfs.
type PCI struct {
	Root  string // the sysfs root
	Saved *Saved
}

// Class is "pci".
func (p PCI) Class() string { return "pci" }

func (p PCI) dir() string { return join(p.Root, "bus/pci/devices") }

type pciSaved struct {
	Parent string `json:"parent"` // the parent function's address, "" for a root bus
	Info   string `json:"info"`
}

// List reads every PCI function, and the removed ones that can come back.
func (p PCI) List(ctx context.Context) ([]AP, error) {
	entries, err := os.ReadDir(p.dir())
	if err != nil {
		if os.IsNotExist(err) {
			return p.removed(nil), nil
		}
		return nil, fmt.Errorf("dr: listing PCI functions: %w", err)
	}
	seen := map[string]bool{}
	var out []AP
	for _, e := range entries {
		seen["pci/"+e.Name()] = true
		out = append(out, p.read(e.Name()))
	}
	out = append(out, p.removed(seen)...)
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// removed lists the saved functions that are not in sysfs.
func (p PCI) removed(seen map[string]bool) []AP {
	var out []AP
	for _, id := range p.Saved.IDs() {
		var s pciSaved
		if !strings.HasPrefix(id, "pci/") || seen[id] || !p.Saved.Get(id, &s) {
			continue
		}
		where := "the PCI root buses"
		if s.Parent != "" {
			where = "bus below " + s.Parent
		}
		out = append(out, AP{ID: id, Type: "pci", Class: "pci", Receptacle: Connected, Occupant: Unconfigured,
			Condition: CondUnknown, Info: "removed (" + s.Info + "); configure rescans " + where})
	}
	return out
}

// Get reads one function.
func (p PCI) Get(ctx context.Context, id string) (AP, error) {
	name, ok := strings.CutPrefix(id, "pci/")
	if !ok || name == "" || strings.Contains(name, "/") {
		return AP{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if exists(join(p.dir(), name)) {
		return p.read(name), nil
	}
	for _, ap := range p.removed(nil) {
		if ap.ID == id {
			return ap, nil
		}
	}
	return AP{}, fmt.Errorf("%w: %s", ErrNotFound, id)
}

// pciClasses names the base classes users meet.
var pciClasses = map[string]string{
	"00": "legacy", "01": "storage", "02": "network", "03": "display", "04": "multimedia",
	"05": "memory", "06": "bridge", "07": "communication", "08": "system", "09": "input",
	"0c": "serial-bus", "0d": "wireless", "12": "accelerator",
}

func (p PCI) read(name string) AP {
	dir := join(p.dir(), name)
	class, _ := readTrim(join(dir, "class"))
	vendor, _ := readTrim(join(dir, "vendor"))
	device, _ := readTrim(join(dir, "device"))
	class = strings.TrimPrefix(class, "0x")
	kind := "unknown"
	if len(class) >= 2 {
		if k, ok := pciClasses[class[:2]]; ok {
			kind = k
		}
	}
	ap := AP{ID: "pci/" + name, Type: "pci-" + kind, Class: "pci", Receptacle: Connected, Occupant: Configured,
		Condition: CondOK, StatusTime: statusTime(dir)}
	if res, ok := SysPath(p.Root, "bus/pci/devices/"+name); ok {
		ap.PhysID = res
		ap.Resources = []string{res}
	}
	info := []string{fmt.Sprintf("%s:%s", strings.TrimPrefix(vendor, "0x"), strings.TrimPrefix(device, "0x"))}
	if drv, err := os.Readlink(join(dir, "driver")); err == nil {
		info = append(info, "driver "+filepath.Base(drv))
	} else {
		info = append(info, "no driver")
	}
	for _, sub := range []string{"net", "block"} {
		if es, err := os.ReadDir(join(dir, sub)); err == nil {
			for _, e := range es {
				info = append(info, sub+" "+e.Name())
			}
		}
	}
	ap.Info = strings.Join(info, ", ")
	if strings.HasPrefix(class, "0600") {
		// A host bridge is the root of everything: not a thing to remove.
		ap.Fixed = "a host bridge cannot be removed"
		ap.Busy = true
	}
	if cond, err := p.condition(name); err == nil {
		ap.Condition = cond
	}
	return ap
}

// condition reads the vendor id from config space: all ones means the
// function no longer answers.
func (p PCI) condition(name string) (string, error) {
	f, err := os.Open(join(p.dir(), name, "config"))
	if err != nil {
		return CondUnknown, err
	}
	defer f.Close()
	b := make([]byte, 2)
	if _, err := f.ReadAt(b, 0); err != nil {
		return CondUnknown, err
	}
	if b[0] == 0xff && b[1] == 0xff {
		return CondFailed, nil
	}
	return CondOK, nil
}

// Test re-reads the function's condition.
func (p PCI) Test(ctx context.Context, ap AP) (string, error) {
	name := strings.TrimPrefix(ap.ID, "pci/")
	if ap.Occupant != Configured {
		return CondUnknown, nil
	}
	return p.condition(name)
}

// Unconfigure records where the function sat, then removes it.
func (p PCI) Unconfigure(ctx context.Context, ap AP) error {
	name := strings.TrimPrefix(ap.ID, "pci/")
	dir := join(p.dir(), name)
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrDriver, err)
	}
	parent := filepath.Base(filepath.Dir(real))
	if !exists(join(p.dir(), parent)) {
		parent = "" // a root bus (pci0000:00)
	}
	if err := p.Saved.Put(ap.ID, pciSaved{Parent: parent, Info: ap.Info}); err != nil {
		return err
	}
	if err := write(join(dir, "remove"), "1"); err != nil {
		p.Saved.Delete(ap.ID)
		return err
	}
	return nil
}

// Configure rescans the bus the function sat on.
func (p PCI) Configure(ctx context.Context, ap AP) error {
	var s pciSaved
	if !p.Saved.Get(ap.ID, &s) {
		return fmt.Errorf("%w: %s was not removed by steady; rescan with 'echo 1 > /sys/bus/pci/rescan'", ErrState, ap.ID)
	}
	target := join(p.Root, "bus/pci/rescan")
	if s.Parent != "" && exists(join(p.dir(), s.Parent, "rescan")) {
		target = join(p.dir(), s.Parent, "rescan")
	}
	if err := write(target, "1"); err != nil {
		return err
	}
	if !appears(join(p.dir(), strings.TrimPrefix(ap.ID, "pci/"))) {
		return fmt.Errorf("%w: a rescan (%s) did not find %s again", ErrDriver, target, ap.ID)
	}
	return p.Saved.Delete(ap.ID)
}

// Slots are the PCI hotplug slots, slot/NAME, where the platform has them
// (pciehp, acpiphp): the receptacle is the slot's power, the occupant the
// functions at its address. Connect powers the slot on (the kernel
// enumerates the card), disconnect powers it off.
type Slots struct {
	Root string
	PCI  PCI
}

// Class is "slot".
func (s Slots) Class() string { return "slot" }

func (s Slots) dir() string { return join(s.Root, "bus/pci/slots") }

// List reads every slot.
func (s Slots) List(ctx context.Context) ([]AP, error) {
	entries, err := os.ReadDir(s.dir())
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("dr: listing PCI slots: %w", err)
	}
	var out []AP
	for _, e := range entries {
		if exists(join(s.dir(), e.Name(), "power")) {
			out = append(out, s.read(e.Name()))
		}
	}
	return out, nil
}

// Get reads one slot.
func (s Slots) Get(ctx context.Context, id string) (AP, error) {
	name, ok := strings.CutPrefix(id, "slot/")
	if !ok || name == "" || strings.Contains(name, "/") || !exists(join(s.dir(), name, "power")) {
		return AP{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return s.read(name), nil
}

// functions lists the PCI functions at the slot's address.
func (s Slots) functions(name string) []string {
	addr, _ := readTrim(join(s.dir(), name, "address"))
	if addr == "" {
		return nil
	}
	es, _ := os.ReadDir(s.PCI.dir())
	var out []string
	for _, e := range es {
		if strings.HasPrefix(e.Name(), addr+".") {
			out = append(out, e.Name())
		}
	}
	return out
}

func (s Slots) read(name string) AP {
	dir := join(s.dir(), name)
	ap := AP{ID: "slot/" + name, Type: "pci-slot", Class: "slot", Receptacle: Disconnected, Occupant: Unconfigured,
		Condition: CondUnknown, StatusTime: statusTime(join(dir, "power"))}
	if pw, _ := readTrim(join(dir, "power")); pw == "1" {
		ap.Receptacle = Connected
	}
	fns := s.functions(name)
	if len(fns) > 0 {
		ap.Occupant, ap.Condition = Configured, CondOK
		for _, f := range fns {
			if r, ok := SysPath(s.Root, "bus/pci/devices/"+f); ok {
				ap.Resources = append(ap.Resources, r)
			}
		}
		ap.Info = "holds " + strings.Join(fns, " ")
	} else if ap.Receptacle == Connected {
		ap.Info = "powered, no function found"
	} else {
		ap.Info = "powered off"
	}
	if a, _ := readTrim(join(dir, "address")); a != "" {
		ap.PhysID = a
	}
	return ap
}

// Unconfigure removes the functions in the slot (power stays on).
func (s Slots) Unconfigure(ctx context.Context, ap AP) error {
	for _, f := range s.functions(strings.TrimPrefix(ap.ID, "slot/")) {
		if err := write(join(s.PCI.dir(), f, "remove"), "1"); err != nil {
			return err
		}
	}
	return nil
}

// Configure powers the slot on if needed, and rescans.
func (s Slots) Configure(ctx context.Context, ap AP) error {
	if ap.Receptacle != Connected {
		return s.Connect(ctx, ap)
	}
	return write(join(s.Root, "bus/pci/rescan"), "1")
}

// Connect powers the slot on.
func (s Slots) Connect(ctx context.Context, ap AP) error {
	return write(join(s.dir(), strings.TrimPrefix(ap.ID, "slot/"), "power"), "1")
}

// Disconnect powers the slot off (the kernel unbinds what is in it).
func (s Slots) Disconnect(ctx context.Context, ap AP) error {
	return write(join(s.dir(), strings.TrimPrefix(ap.ID, "slot/"), "power"), "0")
}
