// Package store is the only door to etcd. Every component reads and writes
// cluster state through it: keys (relative to /steady/v1/), values that
// carry a schema version, transactions, watches and leases.
//
// The agent embeds a single etcd member in its data directory and talks
// to it in process, or, with Endpoints, is a client of an existing etcd
// cluster (TLS with client certificates where the cluster asks for them).
// Callers do not see the difference; more embedded members come with
// joining nodes.
//
// A Store is safe for concurrent use. Open blocks until the store serves
// or the start timeout passes; Close stops the embedded member.
package store

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/etcd/client/pkg/v3/transport"
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
	// Endpoints, when set, name an existing etcd cluster: no member is
	// embedded and Dir is not used. TLS secures the connection.
	Endpoints []string
	TLS       TLSFiles
	// Cluster, when set, makes the embedded member one of a cluster of
	// steady nodes: it listens for peers and remote clients on the
	// node's address, with mutual TLS on the cluster's certificates.
	Cluster *Cluster
}

// Cluster places the embedded member in a cluster of steady nodes.
type Cluster struct {
	Address    string // the node's IP address
	PeerPort   int    // 2380
	ClientPort int    // 2379
	// TLS are the cluster CA and the node's certificate and key, used
	// both ways for peers and remote clients.
	TLS TLSFiles
	// Token keeps members of different clusters apart (the cluster id).
	Token string
	// InitialCluster lists name=peerURL of every member when joining;
	// empty when this member starts the cluster (or restarts: a member
	// with data ignores it).
	InitialCluster string
	// Join: the member joins a running cluster (its data dir is new).
	Join bool
}

// PeerURL is the peer URL of a member at address.
func PeerURL(address string, port int) string {
	return "https://" + net.JoinHostPort(address, strconv.Itoa(port))
}

// TLSFiles are the PEM files of a TLS connection to etcd: the CA that
// signed the servers' certificates and, for client authentication, a
// certificate and its key. All empty: plain TCP.
type TLSFiles struct {
	CA   string
	Cert string
	Key  string
	// CRL is a revocation list (DER) that the member's listeners check
	// on every connection; empty: none.
	CRL string
}

// Store is a handle on steady's state in etcd.
type Store struct {
	etcd      *embed.Etcd // nil with an external cluster
	cli       *clientv3.Client
	log       *slog.Logger
	closing   *atomic.Bool
	name      string
	endpoints []string // of an external cluster
	errc      <-chan error
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
	if len(opts.Endpoints) > 0 {
		return openExternal(ctx, opts)
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
	if c := opts.Cluster; c != nil {
		peer, err := url.Parse(PeerURL(c.Address, c.PeerPort))
		if err != nil {
			return nil, fmt.Errorf("store: peer address %q: %w", c.Address, err)
		}
		remote, _ := url.Parse("https://" + net.JoinHostPort(c.Address, strconv.Itoa(c.ClientPort)))
		cfg.ListenPeerUrls = []url.URL{*peer}
		cfg.AdvertisePeerUrls = []url.URL{*peer}
		cfg.ListenClientUrls = []url.URL{clientURL, *remote}
		cfg.AdvertiseClientUrls = []url.URL{*remote}
		tlsInfo := transport.TLSInfo{TrustedCAFile: c.TLS.CA, CertFile: c.TLS.Cert, KeyFile: c.TLS.Key, ClientCertAuth: true, CRLFile: c.TLS.CRL}
		cfg.PeerTLSInfo, cfg.ClientTLSInfo = tlsInfo, tlsInfo
		cfg.InitialClusterToken = c.Token
		cfg.InitialCluster = opts.Name + "=" + peer.String()
		if c.InitialCluster != "" {
			cfg.InitialCluster = c.InitialCluster
		}
		if c.Join {
			cfg.ClusterState = embed.ClusterStateFlagExisting
		}
	}
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
	// A joining member is a learner until a voter promotes it, and serves
	// nothing until then.
	for e.Server.IsLearner() {
		select {
		case <-timer.C:
			closing.Store(true)
			e.Close()
			return nil, fmt.Errorf("%w: the member joined as a learner and was not promoted within %v", ErrUnavailable, opts.StartTimeout)
		case err := <-e.Err():
			closing.Store(true)
			e.Close()
			return nil, fmt.Errorf("store: embedded etcd failed while joining: %w", err)
		case <-time.After(100 * time.Millisecond):
		}
	}
	return &Store{etcd: e, cli: v3client.New(e.Server), log: opts.Logger, closing: closing, name: opts.Name, errc: e.Err()}, nil
}

// openExternal connects to an existing etcd cluster and waits until it
// answers.
func openExternal(ctx context.Context, opts Options) (*Store, error) {
	cfg := clientv3.Config{Endpoints: opts.Endpoints, DialTimeout: opts.StartTimeout,
		Logger: newZapLogger(opts.Logger, &atomic.Bool{})}
	if opts.TLS != (TLSFiles{}) {
		info := transport.TLSInfo{TrustedCAFile: opts.TLS.CA, CertFile: opts.TLS.Cert, KeyFile: opts.TLS.Key, CRLFile: opts.TLS.CRL}
		tc, err := info.ClientConfig()
		if err != nil {
			return nil, fmt.Errorf("store: TLS settings for %s: %w", strings.Join(opts.Endpoints, ","), err)
		}
		cfg.TLS = tc
	}
	cli, err := clientv3.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("store: connecting to %s: %w", strings.Join(opts.Endpoints, ","), err)
	}
	sctx, cancel := context.WithTimeout(ctx, opts.StartTimeout)
	defer cancel()
	for {
		_, err := cli.Get(sctx, Prefix, countOnly()...)
		if err == nil {
			break
		}
		if sctx.Err() != nil {
			cli.Close()
			if why := diagnose(opts.Endpoints, cfg.TLS); why != "" {
				return nil, fmt.Errorf("%w: etcd at %s did not answer within %v: %s", ErrUnavailable, strings.Join(opts.Endpoints, ","), opts.StartTimeout, why)
			}
			return nil, fmt.Errorf("%w: etcd at %s did not answer within %v: %w", ErrUnavailable, strings.Join(opts.Endpoints, ","), opts.StartTimeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return &Store{cli: cli, log: opts.Logger, closing: &atomic.Bool{}, name: opts.Name, endpoints: opts.Endpoints, errc: make(chan error)}, nil
}

// diagnose finds why endpoints do not answer, which the etcd client
// hides behind a deadline: a refused connection, or a TLS handshake the
// server refused (a certificate from another CA).
func diagnose(endpoints []string, tc *tls.Config) string {
	for _, ep := range endpoints {
		u, err := url.Parse(ep)
		if err != nil {
			continue
		}
		d := &net.Dialer{Timeout: 2 * time.Second}
		if u.Scheme != "https" || tc == nil {
			c, err := d.Dial("tcp", u.Host)
			if err != nil {
				return fmt.Sprintf("connecting to %s: %v", u.Host, err)
			}
			c.Close()
			continue
		}
		c, err := tls.DialWithDialer(d, "tcp", u.Host, tc.Clone())
		if err != nil {
			return fmt.Sprintf("TLS with %s: %v", u.Host, err)
		}
		// With TLS 1.3 the server judges the client's certificate after
		// the handshake: its refusal comes with the first read.
		c.SetReadDeadline(time.Now().Add(time.Second))
		_, err = c.Read(make([]byte, 1))
		c.Close()
		var ne net.Error
		if err != nil && !(errors.As(err, &ne) && ne.Timeout()) {
			return fmt.Sprintf("TLS with %s: %v", u.Host, err)
		}
	}
	return ""
}

// Close stops the embedded member, or disconnects from an external
// cluster. Outstanding calls fail.
func (s *Store) Close() error {
	s.closing.Store(true)
	err := s.cli.Close()
	if s.etcd != nil {
		s.etcd.Close()
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("store: %w", err)
	}
	return nil
}

// ClientSocket is the path of the member's client socket, for etcdctl
// when debugging: etcdctl --endpoints unix://PATH ("" for an external
// cluster).
func (s *Store) ClientSocket() string {
	if s.etcd == nil {
		return ""
	}
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
func (s *Store) Err() <-chan error { return s.errc }
