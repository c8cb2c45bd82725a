package modules

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/steady-ha/steady/internal/rcm"
)

// A synthetic machine: sda1 holds /, sda2 is under an LVM volume mounted
// on /srv/my data, sdb is not used. The disk is refused (its partitions
// are), the root even with force, and a device under LVM names the volume.
func TestFilesys(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	proc, sys := filepath.Join(root, "proc"), filepath.Join(root, "sys")
	mk := func(rel string) {
		if err := os.MkdirAll(filepath.Join(sys, rel), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ln := func(target, rel string) {
		mk(filepath.Dir(rel))
		if err := os.Symlink(filepath.Join(sys, target), filepath.Join(sys, rel)); err != nil {
			t.Fatal(err)
		}
	}
	sda := "devices/pci0000:00/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0/block/sda"
	mk(sda + "/sda1")
	mk(sda + "/sda2/holders")
	mk("devices/virtual/block/dm-0/dm")
	mk("devices/virtual/block/sdb")
	os.WriteFile(filepath.Join(sys, "devices/virtual/block/dm-0/dm/name"), []byte("vg-data\n"), 0o644)
	ln(sda, "block/sda")
	ln("devices/virtual/block/dm-0", "block/dm-0")
	ln("devices/virtual/block/dm-0", "block/sda/sda2/holders/dm-0")
	ln(sda+"/sda1", "dev/block/8:1")
	ln(sda, "dev/block/8:0")
	ln("devices/virtual/block/dm-0", "dev/block/253:0")
	os.MkdirAll(filepath.Join(proc, "self"), 0o755)
	os.WriteFile(filepath.Join(proc, "self/mountinfo"), []byte(
		"22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"+
			"23 22 0:21 / /proc rw shared:2 - proc proc rw\n"+
			`40 22 253:0 / /srv/my\040data rw shared:9 - xfs /dev/mapper/vg-data rw`+"\n"), 0o644)
	f := &Filesys{Proc: proc, Sys: sys}
	ins, err := f.Register(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, in := range ins {
		names = append(names, in.Name)
	}
	want := "/sys/" + sda + "/sda1 /sys/" + sda + "/sda2 /sys/devices/virtual/block/dm-0"
	if strings.Join(names, " ") != want {
		t.Fatalf("registered %v\nwant %s", names, want)
	}
	e := rcm.New(rcm.Options{})
	if err := e.AddClient(ctx, f); err != nil {
		t.Fatal(err)
	}
	res, err := e.RequestOffline(ctx, []string{"/sys/" + sda}, rcm.Force, "t")
	if !errors.Is(err, rcm.ErrRefused) || len(res.Answers) != 1 || !strings.Contains(res.Answers[0].Error, "root filesystem") {
		t.Fatalf("forced offline of the root disk: %v %+v", err, res)
	}
	res, err = e.RequestOffline(ctx, []string{"/sys/" + sda + "/sda2"}, 0, "t")
	if !errors.Is(err, rcm.ErrRefused) || res.Answers[0].Info != "dm-0 (vg-data) mounted on /srv/my data (xfs)" {
		t.Fatalf("offline of a partition under LVM: %v %+v", err, res)
	}
	res, err = e.RequestOffline(ctx, []string{"/sys/" + sda + "/sda2"}, rcm.Force, "t")
	if err != nil {
		t.Fatalf("forced: %v %+v", err, res)
	}
	if _, err := e.NotifyOnline(ctx, res.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.RequestOffline(ctx, []string{"/sys/devices/virtual/block/sdb"}, 0, "t"); err != nil {
		t.Fatalf("an unused disk: %v", err)
	}
}

func TestFilesysBadMountinfo(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "self"), 0o755)
	os.WriteFile(filepath.Join(root, "self/mountinfo"), []byte("22 1 8:1 / / rw - ext4 /dev/sda1 rw\ngarbage\n"), 0o644)
	_, err := (&Filesys{Proc: root, Sys: root}).Register(context.Background())
	if err == nil || !strings.Contains(err.Error(), "mountinfo line 2: malformed") {
		t.Fatalf("err %v", err)
	}
}
