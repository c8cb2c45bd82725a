package dr

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/steady-ha/steady/internal/rcm"
)

// kernelOnWrite makes path a FIFO that, like the kernel's rescan and scan
// files, does something when written: do runs with what was written.
func kernelOnWrite(t *testing.T, path string, do func(string)) {
	t.Helper()
	must(t, os.MkdirAll(filepath.Dir(path), 0o755))
	must(t, syscall.Mkfifo(path, 0o600))
	go func() {
		for {
			b, err := os.ReadFile(path) // blocks until a writer comes
			if err != nil || len(b) == 0 {
				return // the cleanup's empty write
			}
			do(strings.TrimSpace(string(b)))
		}
	}()
	t.Cleanup(func() {
		// Release the reader: open for writing without blocking, then remove.
		if f, err := os.OpenFile(path, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			f.Close()
		}
		os.Remove(path)
	})
}

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, v := range files {
		must(t, os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755))
		must(t, os.WriteFile(filepath.Join(dir, name), []byte(v), 0o644))
	}
}

// A synthetic PCI tree: a NIC on the root bus and an NVMe disk behind a
// bridge. Unconfigure asks the users below the function, removes it, and
// configure rescans the bridge it sat behind.
func TestPCISynthetic(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	nic := filepath.Join(root, "devices/pci0000:00/0000:00:03.0")
	bridge := filepath.Join(root, "devices/pci0000:00/0000:00:1c.0")
	disk := filepath.Join(bridge, "0000:02:00.0")
	writeFiles(t, nic, map[string]string{"class": "0x020000\n", "vendor": "0x8086\n", "device": "0x100e\n", "config": "\x86\x80", "remove": "", "net/eth9/x": ""})
	writeFiles(t, bridge, map[string]string{"class": "0x060400\n", "vendor": "0x8086\n", "device": "0x2448\n", "config": "\x86\x80"})
	writeFiles(t, disk, map[string]string{"class": "0x010802\n", "vendor": "0x144d\n", "device": "0xa808\n", "config": "\xff\xff", "remove": "", "block/nvme0n1/x": ""})
	devs := filepath.Join(root, "bus/pci/devices")
	must(t, os.MkdirAll(devs, 0o755))
	link := func(dir string) { os.Symlink(dir, filepath.Join(devs, filepath.Base(dir))) }
	link(nic)
	link(bridge)
	link(disk)
	kernelOnWrite(t, filepath.Join(bridge, "rescan"), func(string) { link(disk) })

	saved, _ := OpenSaved(filepath.Join(t.TempDir(), "saved.json"))
	e := rcm.New(rcm.Options{})
	nvme := "/sys/devices/pci0000:00/0000:00:1c.0/0000:02:00.0/block/nvme0n1"
	user := &recorder{names: []rcm.Interest{{Name: nvme, Kind: rcm.KindDR}}, deny: nvme}
	must(t, e.AddClient(ctx, user))
	m := NewManager(Options{Engine: e, Drivers: []Driver{PCI{Root: root, Saved: saved}}})

	aps, err := m.List(ctx)
	must(t, err)
	if len(aps) != 3 || aps[0].ID != "pci/0000:00:03.0" || aps[0].Type != "pci-network" || aps[0].Resources[0] != "/sys/devices/pci0000:00/0000:00:03.0" {
		t.Fatalf("list: %+v", aps)
	}
	if !strings.Contains(aps[0].Info, "net eth9") || !strings.Contains(aps[0].Info, "8086:100e") {
		t.Fatalf("info %q", aps[0].Info)
	}
	if out, _ := m.Test(ctx, "pci/0000:02:00.0"); out.AP.Condition != CondFailed {
		t.Fatalf("a function answering all ones: condition %s", out.AP.Condition)
	}

	out, err := m.Unconfigure(ctx, "pci/0000:02:00.0", Request{})
	if !errors.Is(err, rcm.ErrRefused) || len(out.Answers) != 1 || !strings.Contains(out.Answers[0].Error, "in use by the test") {
		t.Fatalf("unconfigure of a disk in use: %v %+v", err, out)
	}
	if b, _ := os.ReadFile(filepath.Join(disk, "remove")); len(b) != 0 {
		t.Fatal("removed although refused")
	}
	user.deny = ""
	if _, err := m.Unconfigure(ctx, "pci/0000:02:00.0", Request{}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(disk, "remove")); string(b) != "1" {
		t.Fatalf("remove file %q", b)
	}
	must(t, os.Remove(filepath.Join(devs, "0000:02:00.0"))) // what the kernel does
	if _, ap, err := m.Get(ctx, "pci/0000:02:00.0"); err != nil || ap.Occupant != Unconfigured || !strings.Contains(ap.Info, "0000:00:1c.0") {
		t.Fatalf("removed function: %v %+v", err, ap)
	}
	if _, err := m.Configure(ctx, "pci/0000:02:00.0", Request{}); err != nil {
		t.Fatal(err)
	}
	if _, ap, _ := m.Get(ctx, "pci/0000:02:00.0"); ap.Occupant != Configured {
		t.Fatalf("after configure: %+v", ap)
	}
	if _, err := m.Disconnect(ctx, "pci/0000:00:03.0", Request{}); !errors.Is(err, ErrNotSupported) {
		t.Fatalf("disconnect of a function without a slot: %v", err)
	}
}

// A synthetic SCSI disk: delete through RCM, then a host scan brings it back.
func TestSCSISynthetic(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	dev := filepath.Join(root, "devices/pci0000:00/0000:00:1f.2/host0/target0:0:1/0:0:1:0")
	writeFiles(t, dev, map[string]string{"type": "0\n", "vendor": "ATA     \n", "model": "QEMU HARDDISK\n", "state": "running\n", "delete": "", "block/sdb/x": ""})
	cls := filepath.Join(root, "class/scsi_device/0:0:1:0")
	must(t, os.MkdirAll(cls, 0o755))
	must(t, os.Symlink(dev, filepath.Join(cls, "device")))
	scanned := make(chan string, 1)
	kernelOnWrite(t, filepath.Join(root, "class/scsi_host/host0/scan"), func(s string) {
		scanned <- s
		os.MkdirAll(cls, 0o755)
		os.Symlink(dev, filepath.Join(cls, "device"))
	})
	saved, _ := OpenSaved("")
	e := rcm.New(rcm.Options{})
	user := &recorder{names: []rcm.Interest{{Name: "/sys/devices/pci0000:00/0000:00:1f.2/host0/target0:0:1/0:0:1:0/block/sdb", Kind: rcm.KindDR}}}
	must(t, e.AddClient(ctx, user))
	m := NewManager(Options{Engine: e, Drivers: []Driver{SCSI{Root: root, Saved: saved}}})
	aps, err := m.List(ctx)
	must(t, err)
	if len(aps) != 1 || aps[0].Type != "disk" || aps[0].Info != "ATA QEMU HARDDISK sdb (running)" || aps[0].Condition != CondOK {
		t.Fatalf("list %+v", aps)
	}
	if _, err := m.Unconfigure(ctx, "scsi/0:0:1:0", Request{}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dev, "delete")); string(b) != "1" {
		t.Fatalf("delete file %q", b)
	}
	if got := strings.Join(user.heard, ","); !strings.Contains(got, "remove /sys/devices") {
		t.Fatalf("the user heard %s", got)
	}
	must(t, os.RemoveAll(cls))
	if _, err := m.Configure(ctx, "scsi/0:0:1:0", Request{}); err != nil {
		t.Fatal(err)
	}
	if s := <-scanned; s != "0 1 0" {
		t.Fatalf("scan wrote %q", s)
	}
	if _, _, err := m.Get(ctx, "scsi/9:0:0:0"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown AP: %v", err)
	}
}

// PCI hotplug slots: disconnect powers the slot off after RCM; connect
// powers it on.
func TestSlotsSynthetic(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	fn := filepath.Join(root, "devices/pci0000:00/0000:00:1c.0/0000:05:00.0")
	writeFiles(t, fn, map[string]string{"class": "0x020000\n", "config": "\x86\x80", "remove": ""})
	writeFiles(t, root, map[string]string{"bus/pci/slots/7/power": "1", "bus/pci/slots/7/address": "0000:05:00\n"})
	must(t, os.MkdirAll(filepath.Join(root, "bus/pci/devices"), 0o755))
	must(t, os.Symlink(fn, filepath.Join(root, "bus/pci/devices/0000:05:00.0")))
	e := rcm.New(rcm.Options{})
	user := &recorder{names: []rcm.Interest{{Name: "/sys/devices/pci0000:00/0000:00:1c.0/0000:05:00.0", Kind: rcm.KindDR}}}
	must(t, e.AddClient(ctx, user))
	saved, _ := OpenSaved("")
	m := NewManager(Options{Engine: e, Drivers: []Driver{Slots{Root: root, PCI: PCI{Root: root, Saved: saved}}}})
	if _, err := m.Disconnect(ctx, "slot/7", Request{}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "bus/pci/slots/7/power")); string(b) != "0" {
		t.Fatalf("power %q", b)
	}
	if got := strings.Join(user.heard, ","); !strings.Contains(got, "offline /sys/devices") {
		t.Fatalf("heard %s", got)
	}
	if _, err := m.Connect(ctx, "slot/7", Request{}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "bus/pci/slots/7/power")); string(b) != "1" {
		t.Fatalf("power %q", b)
	}
}
