package agent

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/steady-ha/steady/internal/cluster"
	"github.com/steady-ha/steady/internal/rgm"
	"github.com/steady-ha/steady/internal/watchdog"
)

// fence connects the membership's fence to the resource group manager
// (built after the membership) and to the watchdog process, which stops
// the groups when this agent cannot.
type fence struct {
	log *slog.Logger
	wd  *watchdog.Client

	mu     sync.Mutex // guards rgm, member and armed
	rgm    *rgm.Manager
	member *cluster.Member
	armed  bool
}

var _ cluster.Fencer = (*fence)(nil)

func (f *fence) setRGM(m *rgm.Manager) {
	f.mu.Lock()
	f.rgm = m
	f.mu.Unlock()
}

func (f *fence) setMember(m *cluster.Member) {
	f.mu.Lock()
	f.member = m
	f.mu.Unlock()
}

func (f *fence) parts() (*rgm.Manager, *cluster.Member) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.rgm, f.member
}

func (f *fence) Freeze(ctx context.Context, epoch uint64) {
	if r, _ := f.parts(); r != nil {
		r.Freeze(ctx, epoch)
	}
}

func (f *fence) Thaw(epoch uint64) {
	if r, _ := f.parts(); r != nil {
		r.Thaw(epoch)
	}
	if st, err := f.wd.Status(); err == nil && st.Fired {
		f.wd.Resolve(false)
	}
}

func (f *fence) Kill(ctx context.Context, epoch uint64) {
	if r, _ := f.parts(); r != nil {
		r.Kill(ctx, epoch)
	}
	if st, err := f.wd.Status(); err == nil && st.Fired {
		f.wd.Resolve(true)
	}
}

// confirmed feeds the watchdog the new fence deadline after each
// confirmed heartbeat. A node alone in its cluster disarms it: nobody
// could take its groups over, so stopping them when the agent dies would
// only do harm.
func (f *fence) confirmed(deadline time.Time, epoch uint64) {
	r, m := f.parts()
	if m == nil {
		// The first heartbeat of a restarted agent, before the membership
		// is set here: a watchdog the previous agent armed gets the new
		// deadline at once.
		if st, err := f.wd.Status(); err == nil && st.Armed && !st.Fired {
			f.wd.Arm(deadline, epoch, nil)
		}
		return
	}
	others := false
	for _, n := range m.Nodes() {
		others = others || n.Name != m.Node()
	}
	if !others {
		f.mu.Lock()
		was := f.armed
		f.armed = false
		f.mu.Unlock()
		if was {
			f.wd.Disarm()
		}
		return
	}
	var t *watchdog.Targets
	if r != nil {
		tg := r.Targets()
		t = &tg
	}
	st, err := f.wd.Arm(deadline, epoch, t)
	if err != nil {
		f.log.Warn("cannot feed the watchdog", "err", err)
		return
	}
	f.mu.Lock()
	f.armed = true
	f.mu.Unlock()
	if st.Fired && !m.Fenced() {
		// It fired while this agent was slow to feed it, yet the
		// membership held (a heartbeat was just confirmed in time).
		f.log.Warn("the watchdog froze the node's groups while the agent was slow; thawing them")
		f.wd.Resolve(false)
	}
}
