package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/steady-ha/steady/internal/cluster"
	"github.com/steady-ha/steady/internal/store"
)

// ErrRestart is what Run returns when the agent must be built again: it
// has just become a member of a cluster, and its store now runs as one.
var ErrRestart = errors.New("agent: restarting to take up the cluster configuration")

// requestRestart makes Run return ErrRestart once the current request
// has been answered.
func (a *Agent) requestRestart() {
	go func() {
		time.Sleep(200 * time.Millisecond) // let the answer reach the caller
		select {
		case a.fatal <- ErrRestart:
		default:
		}
	}()
}

// clusterStore is the store placement for the node's cluster state: its
// member listens on the node's address with the cluster's certificates.
// A node that has just been admitted starts its member afresh: its
// standalone store is kept aside, not mixed into the cluster's.
func (a *Agent) clusterStore(st *cluster.State) (*store.Cluster, error) {
	if st == nil || st.Client {
		return nil, nil
	}
	if st.Join {
		dir := filepath.Join(a.cfg.DataDir, "store")
		if _, err := os.Stat(dir); err == nil {
			aside := dir + ".standalone-" + time.Now().UTC().Format("20060102T150405")
			if err := os.Rename(dir, aside); err != nil {
				return nil, fmt.Errorf("agent: keeping the standalone store aside: %w", err)
			}
			a.log.Warn("joined a cluster: the standalone store is kept aside", "dir", aside)
		}
	}
	return st.StoreCluster(a.cfg.DataDir), nil
}

// afterStoreOpen finishes taking up the cluster state once the store
// serves: the first node's member is now reached at its address, and a
// joined node's first start is over.
func (a *Agent) afterStoreOpen(ctx context.Context, st *cluster.State) error {
	if st == nil || st.Client {
		return nil
	}
	if err := a.store.UpdatePeerURL(ctx, a.node, store.PeerURL(st.Address, st.PeerPort)); err != nil {
		return fmt.Errorf("agent: announcing this member at %s: %w", st.Address, err)
	}
	if st.Join {
		st.Join, st.InitialCluster = false, ""
		if err := st.Save(a.cfg.DataDir); err != nil {
			return err
		}
	}
	return nil
}

// remoteTLS is the agent-to-agent listener's TLS: the node certificate
// with the CA in its chain (a joining node checks the CA against its
// token), client certificates checked when given.
func remoteTLS(dataDir string) (*tls.Config, error) {
	files := cluster.TLSFiles(dataDir)
	pair, err := tls.LoadX509KeyPair(files.Cert, files.Key)
	if err != nil {
		return nil, fmt.Errorf("agent: the node certificate: %w", err)
	}
	caPEM, err := os.ReadFile(files.CA)
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	ca, err := cluster.ParseCert(caPEM)
	if err != nil {
		return nil, fmt.Errorf("agent: %s: %w", files.CA, err)
	}
	pair.Certificate = append(pair.Certificate, ca.Raw)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	crl := cluster.CRLPath(dataDir)
	return &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{pair},
		ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: pool,
		VerifyConnection: func(cs tls.ConnectionState) error { return cluster.CheckCRL(crl, cs.PeerCertificates) }}, nil
}

// clusterAdmin implements server.ClusterAdmin for the agent.
type clusterAdmin struct{ a *Agent }

func (c clusterAdmin) Init(ctx context.Context, name, address string) (*cluster.State, error) {
	a := c.a
	if len(a.cfg.Store.Endpoints) > 0 {
		return nil, fmt.Errorf("%w: the store is an external etcd (store.endpoints): the nodes that use it form the cluster already", cluster.ErrAlreadyMember)
	}
	if name == "" {
		name = a.node
	}
	if address == "" {
		var err error
		if address, err = defaultAddress(); err != nil {
			return nil, err
		}
	}
	st, err := cluster.Init(ctx, a.store, a.cfg.DataDir, a.node, name, address)
	if err != nil {
		return nil, err
	}
	a.log.Info("cluster created; restarting as its first node", "cluster", st.Name, "address", st.Address)
	a.requestRestart()
	return st, nil
}

func (c clusterAdmin) CreateToken(ctx context.Context, ttl time.Duration, by string) (string, time.Time, error) {
	t, rec, err := cluster.CreateToken(ctx, c.a.store, c.a.cfg.DataDir, ttl, by)
	if err != nil {
		return "", time.Time{}, err
	}
	return t.String(), rec.Expires, nil
}

func (c clusterAdmin) Join(ctx context.Context, target, token, address string) (*cluster.State, error) {
	a := c.a
	if len(a.cfg.Store.Endpoints) > 0 {
		return nil, fmt.Errorf("%w: the store is an external etcd (store.endpoints)", cluster.ErrAlreadyMember)
	}
	host := target
	if h, _, err := net.SplitHostPort(target); err == nil {
		host = h
	}
	if address == "" {
		// The address this node reaches the target from. A UDP "dial"
		// sends nothing; it only asks the kernel for the route.
		conn, err := net.Dial("udp", net.JoinHostPort(host, strconv.Itoa(cluster.DefaultAPIPort)))
		if err != nil {
			return nil, fmt.Errorf("%w: no route to %s: %w", cluster.ErrJoin, target, err)
		}
		address = conn.LocalAddr().(*net.UDPAddr).IP.String()
		conn.Close()
	}
	st, err := cluster.Join(ctx, a.cfg.DataDir, a.node, address, target, token)
	if err != nil {
		return nil, err
	}
	a.log.Info("admitted to a cluster; restarting as its member", "cluster", st.Name, "via", target)
	a.requestRestart()
	return st, nil
}

func (c clusterAdmin) Leave(ctx context.Context) error {
	a := c.a
	a.leaving.Store(true)
	if err := cluster.Leave(ctx, a.store, a.member, a.cfg.DataDir, a.node); err != nil {
		if !cluster.HasLeft(a.cfg.DataDir) {
			a.leaving.Store(false)
			return err
		}
		a.log.Error("left the cluster, but its store member could not be removed; remove it from another node", "err", err)
	}
	a.log.Info("left the cluster; restarting standalone")
	a.requestRestart()
	return nil
}

func (c clusterAdmin) Remove(ctx context.Context, node string) error {
	return cluster.Remove(ctx, c.a.store, c.a.node, node)
}

func (c clusterAdmin) Admit(ctx context.Context, req cluster.JoinRequest) (*cluster.JoinResponse, error) {
	return cluster.Admit(ctx, c.a.store, c.a.cfg.DataDir, req)
}

// defaultAddress is the first global unicast address of an interface
// that is up, for a cluster init without --address.
func defaultAddress() (string, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return "", err
	}
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, _ := ifc.Addrs()
		for _, ad := range addrs {
			if ipn, ok := ad.(*net.IPNet); ok && ipn.IP.IsGlobalUnicast() {
				return ipn.IP.String(), nil
			}
		}
	}
	return "", errors.New("agent: no address to reach this node at; give one with --address")
}
