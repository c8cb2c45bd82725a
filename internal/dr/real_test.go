package dr_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/steady-ha/steady/internal/dr"
	"github.com/steady-ha/steady/internal/rcm"
	"github.com/steady-ha/steady/internal/rcm/modules"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the real-kernel tests need root (CI runs as root)")
	}
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// The real kernel: a loop device with a mounted ext4 filesystem is
// refused by the filesys module (even forced, the kernel's own refusal
// stops it), then unmounted, detached through RCM, and attached again
// with the filesystem intact.
func TestRealLoopDevice(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	dir := t.TempDir()
	img := filepath.Join(dir, "disk.img")
	must(t, os.WriteFile(img, nil, 0o600))
	must(t, os.Truncate(img, 32<<20))
	loop := run(t, "losetup", "--find", "--show", img)
	t.Cleanup(func() { exec.Command("losetup", "-d", loop).Run() })
	run(t, "mkfs.ext4", "-q", "-F", loop)
	mnt := filepath.Join(dir, "mnt")
	must(t, os.Mkdir(mnt, 0o755))
	run(t, "mount", loop, mnt)
	t.Cleanup(func() { exec.Command("umount", mnt).Run() })
	must(t, os.WriteFile(filepath.Join(mnt, "data"), []byte("kept"), 0o644))

	e := rcm.New(rcm.Options{Canon: dr.DevicePath})
	must(t, e.AddClient(ctx, &modules.Filesys{Proc: "/proc", Sys: "/sys"}))
	saved, err := dr.OpenSaved(filepath.Join(dir, "saved.json"))
	must(t, err)
	m := dr.NewManager(dr.Options{Engine: e, Drivers: []dr.Driver{dr.Loops{Root: "/sys", Dev: "/dev", Saved: saved}}})
	id := "blk/" + filepath.Base(loop)

	_, ap, err := m.Get(ctx, id)
	must(t, err)
	if ap.Occupant != dr.Configured || ap.Info != "backing file "+img {
		t.Fatalf("%s: %+v", id, ap)
	}
	out, err := m.Unconfigure(ctx, id, dr.Request{})
	if !errors.Is(err, rcm.ErrRefused) || len(out.Answers) == 0 || out.Answers[0].Client != "filesys" || !strings.Contains(out.Answers[0].Error, "mounted on "+mnt) {
		t.Fatalf("unconfigure of a mounted loop device: %v %+v", err, out)
	}
	// Forced, the module lets go, and the driver's exclusive open meets
	// the mount: the kernel's EBUSY, and nothing changed.
	out, err = m.Unconfigure(ctx, id, dr.Request{Force: true})
	if !errors.Is(err, dr.ErrDriver) || !strings.Contains(err.Error(), "in use") || out.Restored == "" {
		t.Fatalf("forced unconfigure of a mounted loop device: %v %+v", err, out)
	}
	if _, ap, _ := m.Get(ctx, id); ap.Occupant != dr.Configured {
		t.Fatalf("after a failed unconfigure: %+v", ap)
	}

	run(t, "umount", mnt)
	if out, err = m.Unconfigure(ctx, id, dr.Request{}); err != nil || !out.Done {
		t.Fatalf("unconfigure: %v %+v", err, out)
	}
	if b, err := os.ReadFile("/sys/block/" + filepath.Base(loop) + "/loop/backing_file"); err == nil {
		t.Fatalf("still attached to %s", b)
	}
	_, ap, err = m.Get(ctx, id)
	if err != nil || ap.Occupant != dr.Unconfigured || ap.Info != "detached from "+img {
		t.Fatalf("detached: %v %+v", err, ap)
	}
	// The record survives the agent.
	saved2, err := dr.OpenSaved(filepath.Join(dir, "saved.json"))
	must(t, err)
	m = dr.NewManager(dr.Options{Engine: e, Drivers: []dr.Driver{dr.Loops{Root: "/sys", Dev: "/dev", Saved: saved2}}})
	if _, err := m.Configure(ctx, id, dr.Request{}); err != nil {
		t.Fatal(err)
	}
	run(t, "mount", loop, mnt)
	if b, err := os.ReadFile(filepath.Join(mnt, "data")); err != nil || string(b) != "kept" {
		t.Fatalf("after re-attach: %q %v", b, err)
	}
}

// inNetns runs f in a new network namespace that the test owns.
func inNetns(t *testing.T) *netlink.Handle {
	t.Helper()
	runtime.LockOSThread()
	orig, err := netns.Get()
	must(t, err)
	ns, err := netns.New() // also switches this thread into it
	must(t, err)
	must(t, netns.Set(orig))
	runtime.UnlockOSThread()
	h, err := netlink.NewHandleAt(ns)
	must(t, err)
	t.Cleanup(func() { h.Close(); ns.Close(); orig.Close() })
	return h
}

// The real kernel: a veth NIC in a network namespace the test creates is
// refused while it has addresses, then unconfigured (forced): addresses
// and routes recorded, taken away, link down; configure puts back the
// same addresses, routes, MTU and state.
func TestRealNetInNamespace(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	h := inNetns(t)
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "drtest0", MTU: 1400}, PeerName: "drtest1"}
	must(t, h.LinkAdd(veth))
	l, err := h.LinkByName("drtest0")
	must(t, err)
	peer, err := h.LinkByName("drtest1")
	must(t, err)
	must(t, h.LinkSetUp(peer))
	must(t, h.LinkSetUp(l))
	for _, a := range []string{"198.18.5.1/24", "fd00:5::1/64"} {
		addr, _ := netlink.ParseAddr(a)
		must(t, h.AddrAdd(l, addr))
	}
	_, dst, _ := net.ParseCIDR("198.18.77.0/24")
	must(t, h.RouteAdd(&netlink.Route{LinkIndex: l.Attrs().Index, Dst: dst, Gw: net.ParseIP("198.18.5.254")}))
	must(t, h.RouteAdd(&netlink.Route{LinkIndex: l.Attrs().Index, Gw: net.ParseIP("198.18.5.254")}))
	nets := dr.Nets{Handle: h}
	_, before, err := nets.Config("drtest0")
	must(t, err)
	if len(before.Addrs) != 2 || len(before.Routes) != 2 {
		t.Fatalf("read configuration %+v", before)
	}

	e := rcm.New(rcm.Options{})
	must(t, e.AddClient(ctx, &modules.IP{Handle: h}))
	addrUser := &addrUser{}
	must(t, e.AddClient(ctx, addrUser))
	saved, err := dr.OpenSaved(filepath.Join(t.TempDir(), "saved.json"))
	must(t, err)
	nets.Saved = saved
	m := dr.NewManager(dr.Options{Engine: e, Drivers: []dr.Driver{nets}})

	out, err := m.Unconfigure(ctx, "net/drtest0", dr.Request{})
	if !errors.Is(err, rcm.ErrRefused) || len(out.Answers) != 1 || !strings.Contains(out.Answers[0].Error, "198.18.5.1/24") {
		t.Fatalf("unconfigure of a NIC with addresses: %v %+v", err, out)
	}
	out, err = m.Unconfigure(ctx, "net/drtest0", dr.Request{Force: true})
	if err != nil || !out.Done {
		t.Fatalf("forced unconfigure: %v %+v", err, out)
	}
	if got := strings.Join(addrUser.heard, ","); got != "offline? ip/198.18.5.1,offline? ip/fd00:5::1,offline ip/198.18.5.1,offline ip/fd00:5::1,remove ip/198.18.5.1,remove ip/fd00:5::1" {
		t.Fatalf("the users of the addresses heard %s", got)
	}
	l, _ = h.LinkByName("drtest0")
	if l.Attrs().Flags&net.FlagUp != 0 {
		t.Fatal("the link is still up")
	}
	_, now, _ := nets.Config("drtest0")
	if len(now.Addrs) != 0 || len(now.Routes) != 0 {
		t.Fatalf("left behind: %+v", now)
	}
	if _, ap, _ := m.Get(ctx, "net/drtest0"); ap.Occupant != dr.Unconfigured || !strings.Contains(ap.Info, "198.18.5.1/24") {
		t.Fatalf("unconfigured AP %+v", ap)
	}

	if _, err := m.Configure(ctx, "net/drtest0", dr.Request{}); err != nil {
		t.Fatal(err)
	}
	_, after, err := nets.Config("drtest0")
	must(t, err)
	after.When, before.When = before.When, after.When
	if fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("configuration not restored:\nbefore %+v\nafter  %+v", before, after)
	}
	if len(saved.IDs()) != 0 {
		t.Fatalf("records left: %v", saved.IDs())
	}
}

// addrUser registers every address and agrees to everything.
type addrUser struct{ heard []string }

func (a *addrUser) Name() string { return "addresses" }
func (a *addrUser) Register(context.Context) ([]rcm.Interest, error) {
	return []rcm.Interest{{Name: "ip/198.18.5.1", Kind: rcm.KindDR}, {Name: "ip/fd00:5::1", Kind: rcm.KindDR}}, nil
}
func (a *addrUser) Call(_ context.Context, c rcm.Call) (string, error) {
	if c.Op != rcm.OpInfo {
		a.heard = append(a.heard, fmt.Sprintf("%s%s %s", c.Op, map[bool]string{true: "?", false: ""}[c.Flags&rcm.Query != 0], c.Resource))
	}
	return "used by the test", nil
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
