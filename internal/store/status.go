package store

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/steady-ha/steady/api"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Status describes the store for "steady status".
func (s *Store) Status(ctx context.Context) api.StoreStatus {
	if s.etcd == nil {
		return s.externalStatus(ctx)
	}
	st := api.StoreStatus{Mode: "embedded", Member: s.name, Role: "down"}
	srv := s.etcd.Server
	members := srv.Cluster().Members()
	st.Members = len(members)
	lead := srv.Leader()
	for _, m := range members {
		if uint64(m.ID) == uint64(lead) {
			st.Leader = m.Name
		}
	}
	resp, err := s.cli.Get(ctx, Prefix, countOnly()...)
	if err != nil {
		st.Error = err.Error()
		return st
	}
	st.Revision = resp.Header.Revision
	st.DBSize = srv.Backend().Size()
	switch {
	case srv.IsLearner():
		st.Role = "learner"
	case lead == srv.MemberID():
		st.Role = "leader"
	case lead == 0:
		st.Role = "no leader"
	default:
		st.Role = "follower"
	}
	return st
}

// Health reports whether the store serves, and why not.
func (s *Store) Health(ctx context.Context) (api.Health, string) {
	st := s.Status(ctx)
	switch {
	case st.Error != "":
		return api.HealthFailed, st.Error
	case st.Role == "no leader":
		return api.HealthDegraded, "no raft leader"
	}
	if st.Mode == "external" {
		return api.HealthOK, fmt.Sprintf("external etcd at %s, leader %s, revision %d", st.Member, st.Leader, st.Revision)
	}
	return api.HealthOK, fmt.Sprintf("%s member %s, %s, revision %d", st.Mode, st.Member, st.Role, st.Revision)
}

// externalStatus describes an external cluster: this node is a client.
func (s *Store) externalStatus(ctx context.Context) api.StoreStatus {
	st := api.StoreStatus{Mode: "external", Member: strings.Join(s.endpoints, ","), Role: "client"}
	resp, err := s.cli.Get(ctx, Prefix, countOnly()...)
	if err != nil {
		st.Error = err.Error()
		st.Role = "down"
		return st
	}
	st.Revision = resp.Header.Revision
	if ms, err := s.cli.MemberList(ctx); err == nil {
		st.Members = len(ms.Members)
		for _, ep := range s.endpoints {
			sr, err := s.cli.Status(ctx, ep)
			if err != nil {
				continue
			}
			st.DBSize = sr.DbSize
			for _, m := range ms.Members {
				if m.ID == sr.Leader {
					st.Leader = m.Name
				}
			}
			break
		}
	}
	return st
}

// newZapLogger routes etcd's zap logs into slog. etcd's info messages
// are the chatter of a database starting and serving, so they become
// debug; warnings and errors stay. Errors logged while the store is
// closing ("server closed") are expected and dropped to debug.
func newZapLogger(l *slog.Logger, closing *atomic.Bool) *zap.Logger {
	return zap.New(&slogCore{h: l.Handler(), closing: closing})
}

type slogCore struct {
	h       slog.Handler
	closing *atomic.Bool
}

// benign are etcd warnings that do not apply to an embedded member
// reached in process.
var benign = map[string]bool{
	"Running http and grpc server on single port. This is not recommended for production.": true,
	"simple token is not cryptographically signed":                                         true, // etcd auth is not used
}

func (c *slogCore) level(l zapcore.Level, msg string) slog.Level {
	switch {
	case benign[msg]:
		return slog.LevelDebug
	case l >= zapcore.ErrorLevel && !c.closing.Load():
		return slog.LevelError
	case l >= zapcore.WarnLevel && !c.closing.Load():
		return slog.LevelWarn
	}
	return slog.LevelDebug
}

func (c *slogCore) Enabled(l zapcore.Level) bool {
	return c.h.Enabled(context.Background(), c.level(l, "")) || c.h.Enabled(context.Background(), slog.LevelDebug)
}

func (c *slogCore) With(fields []zapcore.Field) zapcore.Core {
	return &slogCore{h: c.h.WithAttrs(zapAttrs(fields)), closing: c.closing}
}

func (c *slogCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.h.Enabled(context.Background(), c.level(e.Level, e.Message)) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c *slogCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	r := slog.NewRecord(e.Time, c.level(e.Level, e.Message), e.Message, 0)
	r.AddAttrs(zapAttrs(fields)...)
	return c.h.Handle(context.Background(), r)
}

func (c *slogCore) Sync() error { return nil }

func zapAttrs(fields []zapcore.Field) []slog.Attr {
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range fields {
		f.AddTo(enc)
	}
	attrs := make([]slog.Attr, 0, len(enc.Fields))
	for k, v := range enc.Fields {
		attrs = append(attrs, slog.Any(k, v))
	}
	return attrs
}

// Member is one member of the etcd cluster that holds the store.
type Member struct {
	ID         uint64
	Name       string // empty until an added member has started
	PeerURLs   []string
	Learner    bool
	Leader     bool
	ClientURLs []string
}

// Members lists the store's members (voters and learners) and which one
// leads.
func (s *Store) Members(ctx context.Context) ([]Member, error) {
	resp, err := s.cli.MemberList(ctx)
	if err != nil {
		return nil, wrap(err)
	}
	var lead uint64
	if s.etcd != nil {
		lead = uint64(s.etcd.Server.Leader())
	} else {
		for _, ep := range s.endpoints {
			if sr, err := s.cli.Status(ctx, ep); err == nil {
				lead = sr.Leader
				break
			}
		}
	}
	out := make([]Member, 0, len(resp.Members))
	for _, m := range resp.Members {
		out = append(out, Member{ID: m.ID, Name: m.Name, Learner: m.IsLearner, Leader: m.ID == lead, ClientURLs: m.ClientURLs, PeerURLs: m.PeerURLs})
	}
	return out, nil
}

// AddLearner adds a member that will join at peerURL, as a learner (it
// gets the log but does not vote until promoted), and returns the
// initial-cluster string the new member starts with.
func (s *Store) AddLearner(ctx context.Context, name, peerURL string) (string, error) {
	ctx, cancel := confChangeCtx(ctx)
	defer cancel()
	resp, err := s.cli.MemberAddAsLearner(ctx, []string{peerURL})
	if err != nil {
		return "", wrap(err)
	}
	var parts []string
	for _, m := range resp.Members {
		n := m.Name
		if m.ID == resp.Member.ID {
			n = name
		}
		for _, u := range m.PeerURLs {
			parts = append(parts, n+"="+u)
		}
	}
	return strings.Join(parts, ","), nil
}

// Promote makes a learner a voting member. It fails while the learner
// has not caught up with the log.
func (s *Store) Promote(ctx context.Context, name string) error {
	id, err := s.memberID(ctx, name)
	if err != nil {
		return err
	}
	ctx, cancel := confChangeCtx(ctx)
	defer cancel()
	_, err = s.cli.MemberPromote(ctx, id)
	return wrap(err)
}

// RemoveMember removes a member from the store's cluster.
func (s *Store) RemoveMember(ctx context.Context, name string) error {
	id, err := s.memberID(ctx, name)
	if err != nil {
		return err
	}
	ctx, cancel := confChangeCtx(ctx)
	defer cancel()
	_, err = s.cli.MemberRemove(ctx, id)
	return wrap(err)
}

// UpdatePeerURL changes where a member is reached by its peers (a
// single member that becomes the first of a cluster).
func (s *Store) UpdatePeerURL(ctx context.Context, name, peerURL string) error {
	id, err := s.memberID(ctx, name)
	if err != nil {
		return err
	}
	ctx, cancel := confChangeCtx(ctx)
	defer cancel()
	_, err = s.cli.MemberUpdate(ctx, id, []string{peerURL})
	return wrap(err)
}

func (s *Store) memberID(ctx context.Context, name string) (uint64, error) {
	resp, err := s.cli.MemberList(ctx)
	if err != nil {
		return 0, wrap(err)
	}
	for _, m := range resp.Members {
		if m.Name == name {
			return m.ID, nil
		}
	}
	// A member added but not started yet has no name: match none.
	return 0, fmt.Errorf("%w: no store member %s", ErrNotFound, name)
}

// RemoveMemberID removes a member by its id (one that was added but never
// started has no name).
func (s *Store) RemoveMemberID(ctx context.Context, id uint64) error {
	ctx, cancel := confChangeCtx(ctx)
	defer cancel()
	_, err := s.cli.MemberRemove(ctx, id)
	return wrap(err)
}

// confChangeTimeout bounds a membership change. The server waits for the
// change to be applied without a deadline of its own, and a change that
// raft drops (two removals of the same member racing) is never applied,
// so the caller would wait forever.
const confChangeTimeout = 10 * time.Second

func confChangeCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	if d, ok := ctx.Deadline(); ok && time.Until(d) < confChangeTimeout {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, confChangeTimeout)
}
