package cluster

import (
	"fmt"
	"time"
)

// Fence is the self-fencing rule of one node, without I/O: the caller
// reports when each keepalive was sent and which were confirmed, and asks
// at any time whether the node must consider itself fenced.
//
// The rule: the store renews a node's lease no earlier than the moment
// the keepalive was sent, so the lease lives at least until that send
// time plus the TTL. Counting from the send time of the newest confirmed
// keepalive (not from when the answer came back) is what makes the
// deadline safe: a node that has heard nothing for FenceAfter since then
// stops its failover work, and FenceAfter is less than the TTL by enough
// for the stop and for clock-rate drift (see CheckTiming and
// docs/cluster.md).
type Fence struct {
	after     time.Duration
	confirmed time.Time // send time of the newest confirmed keepalive
	fenced    bool
	epoch     uint64
}

// NewFence starts a fence for a lease granted by a request sent at sent.
func NewFence(after time.Duration, sent time.Time, epoch uint64) *Fence {
	return &Fence{after: after, confirmed: sent, epoch: epoch}
}

// Confirmed records that the keepalive sent at sent was confirmed.
// Confirmations of older keepalives change nothing.
func (f *Fence) Confirmed(sent time.Time) {
	if sent.After(f.confirmed) {
		f.confirmed = sent
	}
}

// Deadline is when the node fences itself unless a newer keepalive is
// confirmed.
func (f *Fence) Deadline() time.Time { return f.confirmed.Add(f.after) }

// Check reports whether the node has just become fenced: true once, at
// the first check at or after the deadline.
func (f *Fence) Check(now time.Time) bool {
	if f.fenced || now.Before(f.Deadline()) {
		return false
	}
	f.fenced = true
	return true
}

// Fenced reports whether the node is fenced.
func (f *Fence) Fenced() bool { return f.fenced }

// Epoch counts the node's lives in the cluster: it grows at every rejoin.
func (f *Fence) Epoch() uint64 { return f.epoch }

// Rejoined ends a fence: the node holds a lease again, granted by a
// request sent at sent. The epoch grows, so that anything stamped with
// the old one is known to be stale.
func (f *Fence) Rejoined(sent time.Time) uint64 {
	f.fenced = false
	f.confirmed = sent
	f.epoch++
	return f.epoch
}

// MaxDrift is the clock-rate difference between two machines that the
// timing allows for: 1,000 ppm, ten times what NTP-disciplined clocks
// and unsynchronised quartz (typically under 100 ppm) show.
const MaxDrift = 1e-3

// CheckTiming checks lease settings: a node fences itself FenceAfter
// after its newest confirmed keepalive was sent, by its own clock; the
// store expires the lease no earlier than TTL after that send, by the
// store's clock. With clocks whose rates differ by at most MaxDrift, the
// node's fence comes at most FenceAfter×(1+MaxDrift) after the send in
// the store's time, so stopping may take up to
//
//	TTL - FenceAfter×(1+MaxDrift)
//
// and stopBudget must fit in that. Keepalives must be frequent enough
// for three to be lost before the node fences itself.
func CheckTiming(ttl, keepalive, fenceAfter, stopBudget time.Duration) error {
	switch {
	case ttl < time.Second || ttl%time.Second != 0:
		return fmt.Errorf("lease TTL %v: the store counts whole seconds; use 1s or more", ttl)
	case keepalive <= 0 || 3*keepalive > fenceAfter:
		return fmt.Errorf("keepalive interval %v: at least three keepalives must fit in fence_after (%v)", keepalive, fenceAfter)
	}
	room := ttl - time.Duration(float64(fenceAfter)*(1+MaxDrift))
	if room < stopBudget {
		return fmt.Errorf("fence_after %v leaves %v before the lease (%v) can expire, less than the %v a node needs to stop its failover work", fenceAfter, room.Round(time.Millisecond), ttl, stopBudget)
	}
	return nil
}
