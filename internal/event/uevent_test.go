package event

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

func msg(parts ...string) []byte { return []byte(strings.Join(parts, "\x00") + "\x00") }

func TestParseUevent(t *testing.T) {
	good := msg("change@/devices/virtual/mem/null", "ACTION=change", "DEVPATH=/devices/virtual/mem/null",
		"SUBSYSTEM=mem", "MAJOR=1", "MINOR=3", "DEVNAME=null", "DEVMODE=0666", "SEQNUM=4711", "SYNTH_UUID=0")
	u, err := ParseUevent(good)
	if err != nil {
		t.Fatal(err)
	}
	if u.Action != "change" || u.DevPath != "/devices/virtual/mem/null" || u.Subsystem != "mem" || u.Seqnum != 4711 || len(u.Env) != 9 {
		t.Fatalf("parsed %+v", u)
	}
	ev := u.Event()
	if ev.Class != ClassDev || ev.Subclass != "change" || ev.Publisher != "kernel" {
		t.Fatalf("event %+v", ev)
	}
	if n, ok := ev.Attrs["seqnum"].Uint64(); !ok || n != 4711 {
		t.Fatalf("seqnum attribute %+v", ev.Attrs["seqnum"])
	}
	if s, _ := ev.Attrs["devname"].Str(); s != "null" {
		t.Fatalf("devname attribute %+v", ev.Attrs["devname"])
	}

	bad := []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "no key=value"},
		{"udev", append([]byte("libudev\x00"), good...), "udev message"},
		{"no at", msg("change", "ACTION=change"), "not action@devpath"},
		{"no seqnum", msg("add@/x", "ACTION=add", "DEVPATH=/x"), "missing"},
		{"bad seqnum", msg("add@/x", "ACTION=add", "DEVPATH=/x", "SEQNUM=abc"), "not a number"},
		{"no equals", msg("add@/x", "ACTION=add", "DEVPATH=/x", "SEQNUM=1", "JUNK"), "not KEY=VALUE"},
		{"bad key", msg("add@/x", "ACTION=add", "DEVPATH=/x", "SEQNUM=1", "A-B=1"), "characters other than"},
		{"duplicate", msg("add@/x", "ACTION=add", "ACTION=add", "DEVPATH=/x", "SEQNUM=1"), "twice"},
		{"header disagrees", msg("add@/y", "ACTION=add", "DEVPATH=/x", "SEQNUM=1"), "disagrees"},
	}
	for _, tt := range bad {
		if _, err := ParseUevent(tt.in); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want %q", tt.name, err, tt.want)
		}
	}
}

func FuzzParseUevent(f *testing.F) {
	f.Add(msg("add@/devices/x", "ACTION=add", "DEVPATH=/devices/x", "SUBSYSTEM=block", "SEQNUM=1"))
	f.Add(msg("remove@/d", "ACTION=remove", "DEVPATH=/d", "SEQNUM=18446744073709551615", "X="))
	f.Add([]byte("libudev\x00\xfe\xed"))
	f.Add([]byte("@\x00=\x00"))
	f.Fuzz(func(t *testing.T, in []byte) {
		u, err := ParseUevent(in)
		if err != nil {
			return
		}
		// Whatever parses must make a publishable event.
		ev := u.Event()
		ev.Publisher = "kernel"
		if err := validate(&ev); err != nil {
			t.Fatalf("parsed uevent %q makes an invalid event: %v", in, err)
		}
	})
}

// TestRealKernelUevent asks the kernel to emit a synthetic "change" uevent
// for /dev/null with a UUID of our own, and waits for it to be published.
func TestRealKernelUevent(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("writing to a device's uevent file needs root (CI runs as root)")
	}
	j := openTestJournal(t, t.TempDir(), nil)
	defer j.Close()
	b := newTestBus(t, j)
	l, err := OpenUevents(b, 1<<20, nopLogger(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		l.Close()
	}()

	var raw [16]byte
	rand.Read(raw[:])
	raw[6] = raw[6]&0x0f | 0x40
	raw[8] = raw[8]&0x3f | 0x80
	id := fmt.Sprintf("%x-%x-%x-%x-%x", raw[0:4], raw[4:6], raw[6:8], raw[8:10], raw[10:])
	sub := b.Subscribe(j.LastSeq(), Filter{Class: ClassDev, Subclass: "change"})
	if err := os.WriteFile("/sys/class/mem/null/uevent", []byte("change "+id+" STEADYTEST=yes"), 0); err != nil {
		t.Fatalf("synthesising a uevent: %v", err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	for {
		ev, err := sub.Next(wctx)
		if err != nil {
			t.Fatalf("our uevent did not arrive: %v", err)
		}
		if u, _ := ev.Attrs["synth_uuid"].Str(); u != id {
			continue
		}
		if s, _ := ev.Attrs["synth_arg_steadytest"].Str(); s != "yes" {
			t.Errorf("synthetic argument missing: %+v", ev.Attrs)
		}
		if s, _ := ev.Attrs["devpath"].Str(); s != "/devices/virtual/mem/null" {
			t.Errorf("devpath = %q", s)
		}
		if n, _ := ev.Attrs["seqnum"].Uint64(); n == 0 || l.LastSeqnum() < n {
			t.Errorf("seqnum %d, listener last %d", n, l.LastSeqnum())
		}
		return
	}
}
