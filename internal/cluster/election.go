package cluster

import (
	"context"
	"errors"
	"fmt"

	"github.com/steady-ha/steady/internal/store"
)

// electionPrefix holds one key per candidate, bound to its node's lease;
// the candidate whose key is oldest (lowest create revision) leads. When
// the leader's lease expires its key goes, and the next oldest leads.
const electionPrefix = "cluster/controller/"

const candidateSchema = 1

type candidate struct {
	Node  string `json:"node"`
	Epoch uint64 `json:"epoch"`
}

// campaign puts the node's candidate key under lease and waits until it
// is the oldest. It returns nil when elected, or ctx's error.
func campaign(ctx context.Context, s Store, node string, epoch uint64, lease store.LeaseID) error {
	key := electionPrefix + node
	// A key left from an earlier lease of this node would keep its old
	// place (and die with the old lease): replace it.
	if it, err := s.Get(ctx, key); err == nil && it.Lease != lease {
		if _, err := s.Delete(ctx, key); err != nil {
			return err
		}
	}
	op, err := store.OpPut(key, candidateSchema, candidate{Node: node, Epoch: epoch}, store.WithLease(lease))
	if err != nil {
		return err
	}
	if _, err := s.Txn(ctx, []store.Cond{store.Missing(key)}, []store.Op{op}, nil); err != nil {
		return err
	}
	for {
		leader, rev, err := controller(ctx, s)
		if err != nil && !errors.Is(err, ErrNoController) {
			return err
		}
		if leader == node {
			return nil
		}
		if _, err := s.Get(ctx, key); errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("cluster: the candidate key of %s is gone (its lease expired)", node)
		}
		// Wait for any change under the prefix, then look again.
		wctx, cancel := context.WithCancel(ctx)
		ch, err := s.Watch(wctx, electionPrefix, rev+1)
		if err != nil {
			cancel()
			return err
		}
		select {
		case <-ch:
		case <-ctx.Done():
		}
		cancel()
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// ErrNoController: no node is the controller now.
var ErrNoController = errors.New("cluster: no controller")

// controller reads who leads, and the revision of that reading.
func controller(ctx context.Context, s Store) (string, int64, error) {
	items, rev, err := s.List(ctx, electionPrefix)
	if err != nil {
		return "", 0, err
	}
	var best *store.Item
	for i := range items {
		if best == nil || items[i].CreateRevision < best.CreateRevision {
			best = &items[i]
		}
	}
	if best == nil {
		return "", rev, ErrNoController
	}
	var c candidate
	if err := best.Decode(&c, candidateSchema); err != nil {
		return "", rev, err
	}
	return c.Node, rev, nil
}

// resign withdraws the node's candidacy.
func resign(ctx context.Context, s Store, node string) error {
	_, err := s.Delete(ctx, electionPrefix+node)
	return err
}
