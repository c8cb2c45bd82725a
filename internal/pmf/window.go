package pmf

import "time"

// Window decides whether a failed tag may be restarted: at most Retries
// restarts within the sliding Period before now (the whole history when
// Period is 0; without limit when Retries is -1). It holds the times of
// past restarts and is pure arithmetic: the caller passes the time.
type Window struct {
	Retries  int           `json:"retries"`
	Period   time.Duration `json:"period"`
	Restarts []time.Time   `json:"restarts,omitempty"`
}

// Used is the number of restarts that count against the limit at now.
func (w *Window) Used(now time.Time) int {
	w.prune(now)
	return len(w.Restarts)
}

// Allow reports whether a restart is allowed at now. It does not record
// one; call Record when the restart happens.
func (w *Window) Allow(now time.Time) bool {
	if w.Retries < 0 {
		return true
	}
	return w.Used(now) < w.Retries
}

// Record counts a restart at now.
func (w *Window) Record(now time.Time) {
	w.prune(now)
	w.Restarts = append(w.Restarts, now)
	// With no limit only the count in the period is ever shown; keep the
	// history bounded.
	if w.Retries < 0 && len(w.Restarts) > MaxRetries {
		w.Restarts = w.Restarts[len(w.Restarts)-MaxRetries:]
	}
}

// Set changes the limits (pmfadm -m); the history stays.
func (w *Window) Set(retries int, period time.Duration) {
	w.Retries, w.Period = retries, period
}

// prune forgets restarts that have left the window. A restart exactly
// Period ago has left it.
func (w *Window) prune(now time.Time) {
	if w.Period <= 0 {
		return
	}
	cutoff := now.Add(-w.Period)
	i := 0
	for i < len(w.Restarts) && !w.Restarts[i].After(cutoff) {
		i++
	}
	if i > 0 {
		w.Restarts = append(w.Restarts[:0], w.Restarts[i:]...)
	}
}
