// Package store is the only door to etcd. Every component reads and writes
// cluster state through it: keys (relative to /steady/v1/), values that
// carry a schema version, transactions, watches and leases.
//
// Today the agent embeds a single etcd member in its data directory and
// talks to it in process. The API hides the topology so that later members
// and an external etcd cluster can be added without touching callers.
//
// A Store is safe for concurrent use. Open blocks until the store serves
// or the start timeout passes; Close stops the embedded member.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3client"
)

// Prefix is where steady keeps its keys in etcd.
const Prefix = "/steady/v1/"

// Errors of the store.
var (
	ErrNotFound    = errors.New("store: key not found")
	ErrBadKey      = errors.New("store: invalid key")
	ErrCorrupt     = errors.New("store: value is not a steady record")
	ErrNewerSchema = errors.New("store: value written by a newer steady")
	ErrUnavailable = errors.New("store: unavailable")
	ErrCompacted   = errors.New("store: watch revision compacted")
	// ErrLeaseNotFound: the lease has expired (or was revoked).
	ErrLeaseNotFound = errors.New("store: lease not found")
)

// Options configures Open.
type Options struct {
	// Dir holds the member's data and its client socket.
	Dir          string
	Name         string // member name, normally the node name
	Heartbeat    time.Duration
	Election     time.Duration
	QuotaBytes   int64
	StartTimeout time.Duration
	Logger       *slog.Logger
}

// Store is a handle on steady's state in etcd.
type Store struct {
	etcd    *embed.Etcd
	cli     *clientv3.Client
	log     *slog.Logger
	closing *atomic.Bool
	name    string
}

// Open starts the embedded member in opts.Dir (creating it on first use)
// and waits until it serves.
func Open(ctx context.Context, opts Options) (*Store, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = 30 * time.Second
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	sock := filepath.Join(opts.Dir, "client.sock")
	if len(sock) > 107 {
		return nil, fmt.Errorf("store: socket path %s is longer than 107 bytes; choose a shorter data directory", sock)
	}
	clientURL := url.URL{Scheme: "unix", Path: sock}
	// A single member needs no peer traffic, but etcd insists on a peer
	// listener; a socket next to the client one keeps it off the network.
	peerURL := url.URL{Scheme: "unix", Path: filepath.Join(opts.Dir, "peer.sock")}

	closing := &atomic.Bool{}
	cfg := embed.NewConfig()
	cfg.Name = opts.Name
	cfg.Dir = filepath.Join(opts.Dir, "etcd")
	cfg.ListenClientUrls = []url.URL{clientURL}
	cfg.AdvertiseClientUrls = []url.URL{clientURL}
	cfg.ListenPeerUrls = []url.URL{peerURL}
	cfg.AdvertisePeerUrls = []url.URL{peerURL}
	cfg.InitialCluster = opts.Name + "=" + peerURL.String()
	cfg.ListenMetricsUrls = nil
	cfg.TickMs = uint(opts.Heartbeat / time.Millisecond)
	cfg.ElectionMs = uint(opts.Election / time.Millisecond)
	cfg.QuotaBackendBytes = opts.QuotaBytes
	cfg.AutoCompactionMode = "periodic"
	cfg.AutoCompactionRetention = "1h"
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(newZapLogger(opts.Logger, closing))
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("store: embedded etcd configuration: %w", err)
	}
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("store: starting embedded etcd in %s: %w", cfg.Dir, err)
	}
	timer := time.NewTimer(opts.StartTimeout)
	defer timer.Stop()
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		closing.Store(true)
		e.Close()
		return nil, fmt.Errorf("store: embedded etcd failed while starting: %w", err)
	case <-timer.C:
		closing.Store(true)
		e.Close()
		return nil, fmt.Errorf("%w: embedded etcd did not become ready within %v", ErrUnavailable, opts.StartTimeout)
	case <-ctx.Done():
		closing.Store(true)
		e.Close()
		return nil, ctx.Err()
	}
	return &Store{etcd: e, cli: v3client.New(e.Server), log: opts.Logger, closing: closing, name: opts.Name}, nil
}

// Close stops the embedded member. Outstanding calls fail.
func (s *Store) Close() error {
	s.closing.Store(true)
	err := s.cli.Close()
	s.etcd.Close()
	if err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("store: %w", err)
	}
	return nil
}

// ClientSocket is the path of the member's client socket, for etcdctl
// when debugging: etcdctl --endpoints unix://PATH.
func (s *Store) ClientSocket() string {
	return s.etcd.Config().AdvertiseClientUrls[0].Path
}

func fullKey(key string) (string, error) {
	if key == "" || strings.HasPrefix(key, "/") || strings.Contains(key, "//") || strings.Contains(key, "..") {
		return "", fmt.Errorf("%w: %q (want a relative path such as nodes/n1)", ErrBadKey, key)
	}
	return Prefix + key, nil
}

func relKey(full []byte) string { return strings.TrimPrefix(string(full), Prefix) }

// record is the envelope of every stored value.
type record struct {
	Schema int             `json:"schema"`
	Value  json.RawMessage `json:"value"`
}

func encode(schema int, v any) (string, error) {
	if schema < 1 {
		return "", fmt.Errorf("store: schema version must be at least 1, got %d", schema)
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("store: encoding value: %w", err)
	}
	b, err := json.Marshal(record{Schema: schema, Value: raw})
	if err != nil {
		return "", fmt.Errorf("store: %w", err)
	}
	return string(b), nil
}

// Item is one stored key and its value.
type Item struct {
	Key            string // relative to Prefix
	Schema         int
	Value          json.RawMessage
	ModRevision    int64
	CreateRevision int64
	Version        int64
	Lease          LeaseID
}

// Decode unmarshals the value into v after checking that it was written
// with a schema version no newer than maxSchema.
func (it Item) Decode(v any, maxSchema int) error {
	if it.Schema > maxSchema {
		return fmt.Errorf("%w: %s has schema %d, this steady reads up to %d", ErrNewerSchema, it.Key, it.Schema, maxSchema)
	}
	if err := json.Unmarshal(it.Value, v); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrCorrupt, it.Key, err)
	}
	return nil
}

func decodeKV(key, value []byte, mod, create, version, lease int64) (Item, error) {
	it := Item{Key: relKey(key), ModRevision: mod, CreateRevision: create, Version: version, Lease: LeaseID(lease)}
	var r record
	if err := json.Unmarshal(value, &r); err != nil || r.Schema < 1 {
		return it, fmt.Errorf("%w: %s", ErrCorrupt, it.Key)
	}
	it.Schema, it.Value = r.Schema, r.Value
	return it, nil
}

func wrap(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	if errors.Is(err, rpctypes.ErrLeaseNotFound) {
		return fmt.Errorf("%w: %w", ErrLeaseNotFound, err)
	}
	return fmt.Errorf("store: %w", err)
}

// Get reads one key.
func (s *Store) Get(ctx context.Context, key string) (Item, error) {
	k, err := fullKey(key)
	if err != nil {
		return Item{}, err
	}
	resp, err := s.cli.Get(ctx, k)
	if err != nil {
		return Item{}, wrap(err)
	}
	if len(resp.Kvs) == 0 {
		return Item{}, fmt.Errorf("%w: %s", ErrNotFound, key)
	}
	kv := resp.Kvs[0]
	return decodeKV(kv.Key, kv.Value, kv.ModRevision, kv.CreateRevision, kv.Version, kv.Lease)
}

// List reads every key under prefix (a relative key, usually ending in
// "/") in key order, and the revision the listing reflects.
func (s *Store) List(ctx context.Context, prefix string) ([]Item, int64, error) {
	k, err := fullKey(prefix)
	if err != nil {
		return nil, 0, err
	}
	resp, err := s.cli.Get(ctx, k, clientv3.WithPrefix())
	if err != nil {
		return nil, 0, wrap(err)
	}
	items := make([]Item, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		it, err := decodeKV(kv.Key, kv.Value, kv.ModRevision, kv.CreateRevision, kv.Version, kv.Lease)
		if err != nil {
			return nil, 0, err
		}
		items = append(items, it)
	}
	return items, resp.Header.Revision, nil
}

// PutOption modifies a Put.
type PutOption func(*[]clientv3.OpOption)

// WithLease attaches the key to a lease: it is deleted when the lease ends.
func WithLease(id LeaseID) PutOption {
	return func(o *[]clientv3.OpOption) { *o = append(*o, clientv3.WithLease(clientv3.LeaseID(id))) }
}

// Put writes v under key with its schema version and returns the new
// revision.
func (s *Store) Put(ctx context.Context, key string, schema int, v any, opts ...PutOption) (int64, error) {
	op, err := OpPut(key, schema, v, opts...)
	if err != nil {
		return 0, err
	}
	resp, err := s.cli.Do(ctx, op.op)
	if err != nil {
		return 0, wrap(err)
	}
	return resp.Put().Header.Revision, nil
}

// Delete removes key and reports whether it existed.
func (s *Store) Delete(ctx context.Context, key string) (bool, error) {
	k, err := fullKey(key)
	if err != nil {
		return false, err
	}
	resp, err := s.cli.Delete(ctx, k)
	if err != nil {
		return false, wrap(err)
	}
	return resp.Deleted > 0, nil
}

// Err reports a fatal failure of the embedded member after it started; the
// agent stops when it fires.
func (s *Store) Err() <-chan error { return s.etcd.Err() }
