package pmf

import (
	"testing"
	"time"
)

// TestWindow replays failures at given offsets (seconds) and checks which
// ones were allowed a restart.
func TestWindow(t *testing.T) {
	t0 := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name     string
		retries  int
		period   time.Duration
		failures []float64 // seconds after t0
		allowed  []bool
	}{
		{"never restart", 0, time.Minute, []float64{0, 100}, []bool{false, false}},
		{"unlimited", -1, time.Minute, []float64{0, 1, 2, 3, 4, 5}, []bool{true, true, true, true, true, true}},
		{"two per minute", 2, time.Minute, []float64{0, 10, 20}, []bool{true, true, false}},
		{"slides: old restarts leave the window", 2, time.Minute, []float64{0, 10, 61, 65, 71}, []bool{true, true, true, false, true}},
		{"exactly one period later has left", 1, time.Minute, []float64{0, 60}, []bool{true, true}},
		{"just inside the period still counts", 1, time.Minute, []float64{0, 59.999}, []bool{true, false}},
		{"whole life when period is 0", 2, 0, []float64{0, 1000, 100000}, []bool{true, true, false}},
		{"refused failures do not count", 1, time.Minute, []float64{0, 30, 45, 61}, []bool{true, false, false, true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := Window{Retries: tt.retries, Period: tt.period}
			for i, sec := range tt.failures {
				now := t0.Add(time.Duration(sec * float64(time.Second)))
				got := w.Allow(now)
				if got != tt.allowed[i] {
					t.Fatalf("failure %d at +%vs: allowed=%v, want %v (used %d)", i, sec, got, tt.allowed[i], w.Used(now))
				}
				if got {
					w.Record(now)
				}
			}
		})
	}
}

func TestWindowModifyKeepsHistory(t *testing.T) {
	t0 := time.Unix(0, 0)
	w := Window{Retries: 1, Period: time.Hour}
	w.Record(t0)
	if w.Allow(t0.Add(time.Minute)) {
		t.Fatal("second restart allowed with retries 1")
	}
	w.Set(3, time.Hour) // pmfadm -m tag -n 3
	if !w.Allow(t0.Add(time.Minute)) || w.Used(t0.Add(time.Minute)) != 1 {
		t.Fatal("raising the limit should allow a restart and keep the one used")
	}
	w.Set(3, 30*time.Second) // a shorter window forgets older restarts
	if n := w.Used(t0.Add(time.Minute)); n != 0 {
		t.Fatalf("used %d after shortening the period", n)
	}
}

func TestSplitAction(t *testing.T) {
	tests := map[string][]string{
		"/usr/bin/notify":                    {"/usr/bin/notify"},
		`/bin/act -x "two words" 'single q'`: {"/bin/act", "-x", "two words", "single q"},
		`/bin/act back\ slash`:               {"/bin/act", "back slash"},
		"  /bin/act\targ  ":                  {"/bin/act", "arg"},
		`/bin/act ""`:                        {"/bin/act", ""},
	}
	for in, want := range tests {
		got, err := SplitAction(in)
		if err != nil || len(got) != len(want) {
			t.Errorf("SplitAction(%q) = %q, %v", in, got, err)
			continue
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("SplitAction(%q)[%d] = %q, want %q", in, i, got[i], want[i])
			}
		}
	}
	for _, bad := range []string{"", "   ", `/bin/x "open`} {
		if _, err := SplitAction(bad); err == nil {
			t.Errorf("SplitAction(%q) succeeded", bad)
		}
	}
}

func TestValidTag(t *testing.T) {
	for _, ok := range []string{"a", "named", "dns-rg,dns-rs,0.svc", "x@y:z+1=2"} {
		if !ValidTag(ok) {
			t.Errorf("ValidTag(%q) = false", ok)
		}
	}
	for _, bad := range []string{"", ".hidden", "-opt", "a/b", "sp ace", "ü"} {
		if ValidTag(bad) {
			t.Errorf("ValidTag(%q) = true", bad)
		}
	}
}
