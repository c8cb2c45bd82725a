package store

import (
	"context"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Op is one operation of a transaction.
type Op struct{ op clientv3.Op }

// OpPut writes v under key with its schema version.
func OpPut(key string, schema int, v any, opts ...PutOption) (Op, error) {
	k, err := fullKey(key)
	if err != nil {
		return Op{}, err
	}
	val, err := encode(schema, v)
	if err != nil {
		return Op{}, err
	}
	var o []clientv3.OpOption
	for _, f := range opts {
		f(&o)
	}
	return Op{clientv3.OpPut(k, val, o...)}, nil
}

// OpDelete removes key.
func OpDelete(key string) (Op, error) {
	k, err := fullKey(key)
	if err != nil {
		return Op{}, err
	}
	return Op{clientv3.OpDelete(k)}, nil
}

// Cond is a condition of a transaction.
type Cond struct{ cmp clientv3.Cmp }

// Missing holds when key does not exist.
func Missing(key string) Cond {
	k, _ := fullKey(key)
	return Cond{clientv3.Compare(clientv3.CreateRevision(k), "=", 0)}
}

// Unchanged holds when key was last modified at revision rev (0: missing).
func Unchanged(key string, rev int64) Cond {
	k, _ := fullKey(key)
	return Cond{clientv3.Compare(clientv3.ModRevision(k), "=", rev)}
}

// TxnResult is the outcome of a transaction.
type TxnResult struct {
	Succeeded bool  // the conditions held and Then ran
	Revision  int64 // the store revision after the transaction
}

// Txn runs then when every condition holds and otherwise, atomically.
// Conditions on invalid keys never hold.
func (s *Store) Txn(ctx context.Context, conds []Cond, then, otherwise []Op) (TxnResult, error) {
	cmps := make([]clientv3.Cmp, len(conds))
	for i, c := range conds {
		cmps[i] = c.cmp
	}
	ops := func(in []Op) []clientv3.Op {
		out := make([]clientv3.Op, len(in))
		for i, o := range in {
			out[i] = o.op
		}
		return out
	}
	resp, err := s.cli.Txn(ctx).If(cmps...).Then(ops(then)...).Else(ops(otherwise)...).Commit()
	if err != nil {
		return TxnResult{}, wrap(err)
	}
	return TxnResult{Succeeded: resp.Succeeded, Revision: resp.Header.Revision}, nil
}

// EventType says what happened to a watched key.
type EventType int

// Event types.
const (
	Put EventType = iota
	Deleted
)

// WatchEvent is one change of a watched key. Item.Value is empty for
// deletions.
type WatchEvent struct {
	Type EventType
	Item Item
}

// WatchBatch is the changes of one revision, or an error that ended the
// watch (ErrCompacted: list again and watch from the listing's revision).
type WatchBatch struct {
	Revision int64
	Events   []WatchEvent
	Err      error
}

// Watch reports changes under prefix from revision fromRev (0: from now).
// The channel is closed when ctx ends or after a batch with Err.
func (s *Store) Watch(ctx context.Context, prefix string, fromRev int64) (<-chan WatchBatch, error) {
	k, err := fullKey(prefix)
	if err != nil {
		return nil, err
	}
	opts := []clientv3.OpOption{clientv3.WithPrefix()}
	if fromRev > 0 {
		opts = append(opts, clientv3.WithRev(fromRev))
	}
	ctx = clientv3.WithRequireLeader(ctx)
	in := s.cli.Watch(ctx, k, opts...)
	out := make(chan WatchBatch)
	go func() {
		defer close(out)
		for resp := range in {
			b := WatchBatch{Revision: resp.Header.Revision}
			if err := resp.Err(); err != nil {
				if resp.CompactRevision != 0 {
					b.Err = fmt.Errorf("%w: oldest revision is %d", ErrCompacted, resp.CompactRevision)
				} else {
					b.Err = wrap(err)
				}
			}
			for _, ev := range resp.Events {
				we := WatchEvent{Type: Put}
				kv := ev.Kv
				if ev.Type == clientv3.EventTypeDelete {
					we.Type = Deleted
					we.Item = Item{Key: relKey(kv.Key), ModRevision: kv.ModRevision}
				} else if it, err := decodeKV(kv.Key, kv.Value, kv.ModRevision, kv.CreateRevision, kv.Version, kv.Lease); err == nil {
					we.Item = it
				} else {
					b.Err = err
					break
				}
				b.Events = append(b.Events, we)
			}
			select {
			case out <- b:
			case <-ctx.Done():
				return
			}
			if b.Err != nil {
				return
			}
		}
	}()
	return out, nil
}

// LeaseID identifies a lease.
type LeaseID int64

// Grant creates a lease of ttl (rounded up to whole seconds, etcd's unit).
func (s *Store) Grant(ctx context.Context, ttl time.Duration) (LeaseID, error) {
	secs := int64((ttl + time.Second - 1) / time.Second)
	resp, err := s.cli.Grant(ctx, secs)
	if err != nil {
		return 0, wrap(err)
	}
	return LeaseID(resp.ID), nil
}

// KeepAliveOnce renews a lease and returns its remaining time to live.
func (s *Store) KeepAliveOnce(ctx context.Context, id LeaseID) (time.Duration, error) {
	resp, err := s.cli.KeepAliveOnce(ctx, clientv3.LeaseID(id))
	if err != nil {
		return 0, wrap(err)
	}
	return time.Duration(resp.TTL) * time.Second, nil
}

// Revoke ends a lease now, deleting its keys.
func (s *Store) Revoke(ctx context.Context, id LeaseID) error {
	_, err := s.cli.Revoke(ctx, clientv3.LeaseID(id))
	return wrap(err)
}

func countOnly() []clientv3.OpOption {
	return []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithCountOnly()}
}
