package cluster

import (
	"github.com/steady-ha/steady/internal/config"
	"strings"
	"testing"
	"time"
)

func TestFence(t *testing.T) {
	t0 := time.Unix(1000, 0)
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	f := NewFence(600*time.Millisecond, t0, 1)
	if f.Check(ms(599)) {
		t.Fatal("fenced before the deadline")
	}
	// The heartbeat sent at 100 ms is answered late, at 500 ms: the
	// deadline counts from its send time.
	f.Confirmed(ms(100), ms(500))
	if got := f.Deadline(); !got.Equal(ms(700)) {
		t.Fatalf("deadline %v", got.Sub(t0))
	}
	f.Confirmed(ms(50), ms(550)) // an older answer arriving later changes nothing
	if !f.Deadline().Equal(ms(700)) {
		t.Fatal("an older confirmation moved the deadline back")
	}
	if f.Check(ms(699)) || !f.Check(ms(700)) || f.Check(ms(800)) || !f.Fenced() {
		t.Fatal("the fence must come exactly once, at the deadline")
	}
	// A heartbeat sent before the deadline but confirmed after its own
	// deadline ends nothing: someone may have declared the node down.
	if f.Confirmed(ms(650), ms(1300)) || !f.Fenced() {
		t.Fatal("unfenced by a confirmation that came after its own deadline")
	}
	// One confirmed within its own deadline ends the fence, same epoch.
	if !f.Confirmed(ms(1400), ms(1500)) || f.Fenced() || f.Epoch() != 1 {
		t.Fatalf("a timely confirmation: fenced %v epoch %d", f.Fenced(), f.Epoch())
	}
	if e := f.Rejoined(ms(2100)); e != 2 || f.Fenced() || f.Epoch() != 2 {
		t.Fatalf("rejoin: epoch %d fenced %v", e, f.Fenced())
	}
	if f.Check(ms(2699)) || !f.Check(ms(2700)) {
		t.Fatal("the deadline after a rejoin counts from its first heartbeat")
	}
	// The others wait for the drift on both clocks and the stop budget.
	if d := TakeoverDelay(600*time.Millisecond, 300*time.Millisecond); d != 901200*time.Microsecond {
		t.Fatalf("takeover delay %v", d)
	}
}

func TestCheckTiming(t *testing.T) {
	if err := CheckTiming(2*time.Second, 100*time.Millisecond, 600*time.Millisecond, 300*time.Millisecond); err != nil {
		t.Fatalf("the defaults: %v", err)
	}
	for _, c := range []struct {
		ttl, ka, after, stop time.Duration
		want                 string
	}{
		{1500 * time.Millisecond, 250 * time.Millisecond, time.Second, 0, "whole seconds"},
		{2 * time.Second, 600 * time.Millisecond, 1500 * time.Millisecond, 0, "three keepalives"},
		{2 * time.Second, 250 * time.Millisecond, 1900 * time.Millisecond, 400 * time.Millisecond, "less than the 400ms"},
		{2 * time.Second, 250 * time.Millisecond, time.Second, 0, "needs time to stop"},
	} {
		err := CheckTiming(c.ttl, c.ka, c.after, c.stop)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v/%v/%v/%v: %v, want %q", c.ttl, c.ka, c.after, c.stop, err, c.want)
		}
	}
}

// The configuration checks the timing with its own copy of the rule (it
// does not import this package); both must agree.
func TestConfigAgreesWithCheckTiming(t *testing.T) {
	for _, c := range [][4]time.Duration{
		{2 * time.Second, 250 * time.Millisecond, 1500 * time.Millisecond, 400 * time.Millisecond},
		{2 * time.Second, 250 * time.Millisecond, 1600 * time.Millisecond, 400 * time.Millisecond},
		{1500 * time.Millisecond, 250 * time.Millisecond, time.Second, 0},
		{3 * time.Second, 600 * time.Millisecond, 1500 * time.Millisecond, 0},
		{1 * time.Second, 100 * time.Millisecond, 700 * time.Millisecond, 290 * time.Millisecond},
		{1 * time.Second, 100 * time.Millisecond, 700 * time.Millisecond, 300 * time.Millisecond},
	} {
		cfg := config.Default()
		cfg.Cluster = config.Cluster{LeaseTTL: config.Duration(c[0]), Keepalive: config.Duration(c[1]), FenceAfter: config.Duration(c[2]), StopBudget: config.Duration(c[3])}
		cerr := cfg.Validate()
		kerr := CheckTiming(c[0], c[1], c[2], c[3])
		if (cerr == nil) != (kerr == nil) {
			t.Errorf("%v: the configuration says %v, the cluster package %v", c, cerr, kerr)
		}
	}
}
