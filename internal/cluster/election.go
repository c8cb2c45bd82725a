package cluster

import (
	"context"
	"errors"

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

// candidacy makes sure the node's candidate key exists, bound to its
// current lease. A key left from an earlier lease of this node would keep
// its old place (and die with the old lease): it is replaced, and the
// node goes to the back of the line.
func candidacy(ctx context.Context, s Store, node string, epoch uint64, lease store.LeaseID) error {
	key := electionPrefix + node
	it, err := s.Get(ctx, key)
	if err == nil {
		var c candidate
		if it.Lease == lease && it.Decode(&c, candidateSchema) == nil && c.Epoch == epoch {
			return nil
		}
		if _, err := s.Delete(ctx, key); err != nil {
			return err
		}
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	op, err := store.OpPut(key, candidateSchema, candidate{Node: node, Epoch: epoch}, store.WithLease(lease))
	if err != nil {
		return err
	}
	_, err = s.Txn(ctx, []store.Cond{store.Missing(key)}, []store.Op{op}, nil)
	return err
}

// ErrNoController: no node is the controller now.
var ErrNoController = errors.New("cluster: no controller")

// controller reads who leads: the oldest candidate whose node is up (a
// node declared down keeps its key until its lease expires, but leads no
// more), and the revision of that reading.
func controller(ctx context.Context, s Store) (string, int64, error) {
	items, rev, err := s.List(ctx, electionPrefix)
	if err != nil {
		return "", 0, err
	}
	downs, err := listDown(ctx, s)
	if err != nil {
		return "", 0, err
	}
	var best *store.Item
	for i := range items {
		if _, down := downs[items[i].Key[len(electionPrefix):]]; down {
			continue
		}
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
