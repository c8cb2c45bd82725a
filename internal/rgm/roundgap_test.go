package rgm

import (
	"testing"
	"time"
)

func TestRoundGap(t *testing.T) {
	for _, c := range []struct{ d, want time.Duration }{
		{50 * time.Microsecond, 0},                     // a few groups: place again at once
		{20 * time.Millisecond, 40 * time.Millisecond}, // thousands: let reports gather
		{time.Second, 250 * time.Millisecond},          // never longer than a quarter second
	} {
		if got := roundGap(c.d); got != c.want {
			t.Errorf("roundGap(%v) = %v, want %v", c.d, got, c.want)
		}
	}
}
