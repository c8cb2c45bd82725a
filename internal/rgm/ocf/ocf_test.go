package ocf

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/steady-ha/steady/internal/reaper"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		action string
		rc     int
		probe  bool
		want   Outcome
	}{
		{"start", 0, false, Outcome{OK: true, Running: true, Severity: SevNone}},
		{"stop", 0, false, Outcome{OK: true, Severity: SevNone}},
		{"monitor", 7, true, Outcome{OK: true, Severity: SevNone}},
		{"monitor", 7, false, Outcome{Severity: SevSoft}},
		{"monitor", 190, false, Outcome{OK: true, Running: true, Degraded: true, Severity: SevNone}},
		{"start", 1, false, Outcome{Severity: SevSoft}},
		{"start", 2, false, Outcome{Severity: SevHard}},
		{"start", 5, false, Outcome{Severity: SevHard}},
		{"start", 6, false, Outcome{Severity: SevFatal}},
		{"start", 137, false, Outcome{Severity: SevSoft}},
	}
	for _, tt := range tests {
		if got := Classify(tt.action, tt.rc, tt.probe); got != tt.want {
			t.Errorf("Classify(%s, %d, %v) = %+v, want %+v", tt.action, tt.rc, tt.probe, got, tt.want)
		}
	}
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{"": 0, "20": 20 * time.Second, "20s": 20 * time.Second,
		"1m": time.Minute, "500ms": 500 * time.Millisecond, "2h": 2 * time.Hour, "1d": 24 * time.Hour} {
		if got, err := ParseDuration(in); err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v %v", in, got, err)
		}
	}
	for _, bad := range []string{"x", "-1s", "1.5s"} {
		if _, err := ParseDuration(bad); err == nil {
			t.Errorf("ParseDuration(%q) accepted", bad)
		}
	}
}

func TestEnvAndReasons(t *testing.T) {
	env := strings.Join(Env(EnvOptions{Root: DefaultRoot, Instance: "r1", Type: "Dummy", Provider: "heartbeat",
		Params: map[string]string{"state": "/tmp/s", "fake": "x"}, Interval: 10 * time.Second, Timeout: 20 * time.Second}), "\n")
	for _, want := range []string{"OCF_RESKEY_state=/tmp/s", "OCF_RESKEY_fake=x", "OCF_RESOURCE_INSTANCE=r1",
		"OCF_RESKEY_CRM_meta_interval=10000", "OCF_RESKEY_CRM_meta_timeout=20000", "OCF_ROOT=/usr/lib/ocf"} {
		if !strings.Contains(env, want) {
			t.Errorf("environment lacks %s", want)
		}
	}
	out := "INFO: x\nocf-exit-reason:first\nsomething ocf-exit-reason: the real one \n"
	if r := ExitReasons(out); len(r) != 2 || r[1] != "the real one" {
		t.Fatalf("reasons %q", r)
	}
	if d := Describe("start", 6, out); d != "start returned OCF_ERR_CONFIGURED: the real one" {
		t.Fatalf("Describe = %q", d)
	}
	if _, _, err := ParseName("ocf:heartbeat"); err == nil {
		t.Error("ParseName accepted two parts")
	}
	if _, _, err := ParseName("ocf:a/b:y"); err == nil {
		t.Error("ParseName accepted a slash")
	}
}

// TestRealAgents reads the meta-data of the Debian agents the resource
// group manager's tests use (CI installs resource-agents).
func TestRealAgents(t *testing.T) {
	for _, name := range []string{"ocf:heartbeat:Dummy", "ocf:heartbeat:Stateful", "ocf:heartbeat:Delay",
		"ocf:heartbeat:anything", "ocf:heartbeat:symlink"} {
		m, _, err := ReadMetadata(context.Background(), nil, DefaultRoot, name)
		if err != nil {
			t.Fatalf("%s: %v (is Debian's resource-agents installed? make test installs it)", name, err)
		}
		if m.Actions["start"].Timeout <= 0 || len(m.Params) == 0 {
			t.Errorf("%s: %+v", name, m)
		}
	}
	if len(List(DefaultRoot)) < 50 {
		t.Errorf("only %d agents listed", len(List(DefaultRoot)))
	}
	if _, err := Find(DefaultRoot, "ocf:heartbeat:NoSuchAgent"); err == nil {
		t.Error("Find of a missing agent succeeded")
	}
}

// TestReadMetadataUnderReaper: in the agent a Reaper reaps every child, so
// meta-data is read through it (with os/exec alone the Reaper can take the
// exit status first: "waitid: no child processes", seen once in CI). The
// output must still arrive whole and the status be the agent's.
func TestReadMetadataUnderReaper(t *testing.T) {
	r, err := reaper.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for i := 0; i < 30; i++ {
		if _, _, err := ReadMetadata(context.Background(), r, DefaultRoot, "ocf:heartbeat:Dummy"); err != nil {
			t.Fatalf("read %d: %v", i, err)
		}
	}
}
