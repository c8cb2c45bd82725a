package cluster

import (
	"fmt"
	"time"
)

// Fence is the self-fencing rule of one node, without I/O: the caller
// reports when each heartbeat was sent and which were confirmed, and asks
// at any time whether the node must consider itself fenced.
//
// The rule: another node may declare this one down only after it has
// seen no newer heartbeat of it for TakeoverDelay, counted from when it
// saw the newest one, which was after that heartbeat was sent. Counting
// from the send time of the newest confirmed heartbeat (not from when the
// answer came back) is what makes the deadline safe: a node that has had
// nothing confirmed for FenceAfter since then stops its failover work,
// and TakeoverDelay exceeds FenceAfter by enough for the stop and for
// clock-rate drift (see TakeoverDelay and docs/cluster.md).
//
// A fence is not final: a heartbeat confirmed before its own deadline
// (so that nobody can have declared the node down) ends it, and the
// frozen work resumes. Only a node that finds itself declared down
// rejoins, with a new epoch.
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

// Confirmed records that the heartbeat sent at sent was confirmed at
// now. Confirmations of older heartbeats change nothing. It reports
// whether this ended a fence: the node was fenced, and the confirmation
// came before its own deadline, so the node's membership held throughout.
func (f *Fence) Confirmed(sent, now time.Time) (resumed bool) {
	if sent.After(f.confirmed) {
		f.confirmed = sent
	}
	if f.fenced && now.Before(f.Deadline()) {
		f.fenced = false
		return true
	}
	return false
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

// Rejoined starts the node's next life in the cluster after it was
// declared down: its first heartbeat of the new epoch was sent at sent.
// The epoch grows, so that anything stamped with the old one is known to
// be stale.
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

// TakeoverDelay is how long a node must have seen no newer heartbeat of
// another before it may declare that one down: the other fences itself
// FenceAfter after its newest confirmed heartbeat was sent, by its own
// clock, which is at most FenceAfter×(1+MaxDrift) in real time, and the
// observer measures with its own clock, which may run slow by MaxDrift
// too; then the other has stopBudget to stop.
func TakeoverDelay(fenceAfter, stopBudget time.Duration) time.Duration {
	return time.Duration(float64(fenceAfter)*(1+2*MaxDrift)) + stopBudget
}

// CheckTiming checks the membership settings. Keepalives (heartbeats and
// lease renewals) must be frequent enough for three to be lost before the
// node fences itself. The lease keeps the node's liveness record and its
// candidacy for controller; it must outlive the takeover delay, so that
// a node declared down is listed until then, which a fence_after with
// MaxDrift and stopBudget within the TTL guarantees:
//
//	TTL - FenceAfter×(1+MaxDrift) >= stopBudget
func CheckTiming(ttl, keepalive, fenceAfter, stopBudget time.Duration) error {
	switch {
	case ttl < time.Second || ttl%time.Second != 0:
		return fmt.Errorf("lease TTL %v: the store counts whole seconds; use 1s or more", ttl)
	case keepalive <= 0 || 3*keepalive > fenceAfter:
		return fmt.Errorf("keepalive interval %v: at least three keepalives must fit in fence_after (%v)", keepalive, fenceAfter)
	}
	room := ttl - time.Duration(float64(fenceAfter)*(1+MaxDrift))
	if stopBudget <= 0 {
		return fmt.Errorf("stop budget %v: the node needs time to stop its failover work", stopBudget)
	}
	if room < stopBudget {
		return fmt.Errorf("fence_after %v leaves %v before the lease (%v) can expire, less than the %v a node needs to stop its failover work", fenceAfter, room.Round(time.Millisecond), ttl, stopBudget)
	}
	return nil
}
