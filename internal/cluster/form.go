package cluster

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/steady-ha/steady/internal/atomicfile"
	"github.com/steady-ha/steady/internal/store"
)

// Errors of forming a cluster.
var (
	ErrAlreadyMember = errors.New("cluster: this node already belongs to a cluster")
	ErrNotMember     = errors.New("cluster: this node belongs to no cluster")
	ErrJoin          = errors.New("cluster: join refused")
)

// Ports of a clustered node, on its address.
const (
	DefaultPeerPort   = 2380
	DefaultClientPort = 2379
	DefaultAPIPort    = 7946
	// MaxVoters is the largest number of voting store members; further
	// nodes are learners only while they catch up, then clients.
	MaxVoters = 5
)

const stateSchema = 1

// State is what makes a node a member of a cluster, kept in
// DATA_DIR/cluster/state.json next to its certificates in
// DATA_DIR/cluster/pki.
type State struct {
	Schema     int       `json:"schema"`
	Name       string    `json:"name"` // the cluster's
	ID         string    `json:"id"`
	Address    string    `json:"address"` // this node's
	PeerPort   int       `json:"peer_port"`
	ClientPort int       `json:"client_port"`
	APIPort    int       `json:"api_port"`
	Created    time.Time `json:"created"`
	// InitialCluster and Join are for the first start of a joining node's
	// store member.
	InitialCluster string `json:"initial_cluster,omitempty"`
	Join           bool   `json:"join,omitempty"`
	// Client: the cluster had its five voters when the node joined; it
	// holds no store member and reaches the voters at Endpoints.
	Client    bool     `json:"client,omitempty"`
	Endpoints []string `json:"endpoints,omitempty"`
}

// StateDir is the cluster directory in a data dir.
func StateDir(dataDir string) string { return filepath.Join(dataDir, "cluster") }

func pkiDir(dataDir string) string { return filepath.Join(StateDir(dataDir), "pki") }

// LoadState reads the node's cluster state; nil when it belongs to none.
func LoadState(dataDir string) (*State, error) {
	p := filepath.Join(StateDir(dataDir), "state.json")
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("cluster: %s is damaged: %w", p, err)
	}
	if st.Schema != stateSchema {
		return nil, fmt.Errorf("cluster: %s has schema %d, this steady reads %d", p, st.Schema, stateSchema)
	}
	return &st, nil
}

// Save writes the state durably.
func (st *State) Save(dataDir string) error {
	st.Schema = stateSchema
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(StateDir(dataDir), 0o700); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	return atomicfile.Write(filepath.Join(StateDir(dataDir), "state.json"), b, 0o600)
}

// CRLFile is the revocation list every member's listeners check.
const CRLFile = "crl.der"

// TLSFiles are the node's certificate files.
func TLSFiles(dataDir string) store.TLSFiles {
	d := pkiDir(dataDir)
	return store.TLSFiles{CA: filepath.Join(d, CACertFile), Cert: filepath.Join(d, NodeCertFile), Key: filepath.Join(d, NodeKeyFile),
		CRL: filepath.Join(d, CRLFile)}
}

// CRLPath is where the node keeps the cluster's revocation list.
func CRLPath(dataDir string) string { return filepath.Join(pkiDir(dataDir), CRLFile) }

// certRecord is the certificate a node was given, so that removing the
// node can revoke it.
type certRecord struct {
	Serial string    `json:"serial"`
	Issued time.Time `json:"issued"`
}

// crlRecord is the cluster's current revocation list.
type crlRecord struct {
	DER    []byte `json:"der"`
	Number int64  `json:"number"`
}

// joining records a store member added for a node that has yet to start.
type joining struct {
	PeerURL string    `json:"peer_url"`
	Added   time.Time `json:"added"`
}

// JoinGrace is how long an added store member may take to start before
// the controller removes it: a failed join leaves no member behind.
const JoinGrace = 2 * time.Minute

const (
	joiningKeys = "cluster/joining/"
	certKeys    = "cluster/certs/"
	crlKey      = "cluster/crl"
	crlSchema   = 1
)

// StoreCluster is the store's cluster placement for this state (nil for
// a client-only node).
func (st *State) StoreCluster(dataDir string) *store.Cluster {
	if st.Client {
		return nil
	}
	return &store.Cluster{Address: st.Address, PeerPort: st.PeerPort, ClientPort: st.ClientPort, TLS: TLSFiles(dataDir),
		Token: st.ID, InitialCluster: st.InitialCluster, Join: st.Join}
}

// Info is the cluster's record in the store.
type Info struct {
	Name    string    `json:"name"`
	ID      string    `json:"id"`
	CA      string    `json:"ca"`  // the CA certificate, PEM
	Key     string    `json:"key"` // its key, PEM
	Created time.Time `json:"created"`
}

// storeCA reads the cluster's CA from the store.
func storeCA(ctx context.Context, s *store.Store) (*CA, error) {
	it, err := s.Get(ctx, infoKey)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: make one with \"steady cluster init\"", ErrNotMember)
	}
	if err != nil {
		return nil, err
	}
	var info Info
	if err := it.Decode(&info, infoSchema); err != nil {
		return nil, err
	}
	return ParseCA([]byte(info.CA), []byte(info.Key))
}

const (
	infoKey       = "cluster/info"
	infoSchema    = 1
	tokenKeys     = "cluster/tokens/"
	tokenSchema   = 1
	revokedPrefix = "cluster/revoked/"
)

func writeCert(dataDir string, certPEM, keyPEM []byte, ca []byte) error {
	d := pkiDir(dataDir)
	if err := os.MkdirAll(d, 0o700); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	for name, b := range map[string][]byte{NodeKeyFile: keyPEM, NodeCertFile: certPEM, CACertFile: ca} {
		mode := os.FileMode(0o644)
		if name == NodeKeyFile {
			mode = 0o600
		}
		if err := atomicfile.Write(filepath.Join(d, name), b, mode); err != nil {
			return fmt.Errorf("cluster: %w", err)
		}
	}
	return nil
}

// Init makes the node the first of a new cluster: the CA, the node's
// certificate, the cluster's record in the store and the state file. The
// agent then restarts to serve its store member on address.
func Init(ctx context.Context, s *store.Store, dataDir, node, name, address string) (*State, error) {
	if st, err := LoadState(dataDir); err != nil {
		return nil, err
	} else if st != nil {
		return nil, fmt.Errorf("%w %s (its state is in %s; \"steady cluster leave\" first)", ErrAlreadyMember, st.Name, StateDir(dataDir))
	}
	ip := net.ParseIP(address)
	if ip == nil || ip.IsUnspecified() || ip.IsMulticast() {
		return nil, fmt.Errorf("cluster: %q is not an address other nodes can reach this node at", address)
	}
	now := time.Now()
	ca, err := NewCA(name, now)
	if err != nil {
		return nil, err
	}
	keyPEM, csr, err := NewNodeKey(node)
	if err != nil {
		return nil, err
	}
	certPEM, cert, err := ca.Sign(csr, node, []net.IP{ip}, now)
	if err != nil {
		return nil, err
	}
	if err := writeCert(dataDir, certPEM, keyPEM, ca.CertPEM); err != nil {
		return nil, err
	}
	crl, err := ca.CRL(nil, 1, now)
	if err != nil {
		return nil, err
	}
	if err := atomicfile.Write(CRLPath(dataDir), crl, 0o644); err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	if _, err := s.Put(ctx, crlKey, crlSchema, crlRecord{DER: crl, Number: 1}); err != nil {
		return nil, err
	}
	if _, err := s.Put(ctx, certKeys+node, 1, certRecord{Serial: SerialOf(cert), Issued: now.UTC()}); err != nil {
		return nil, err
	}
	caKey, err := ca.KeyPEM()
	if err != nil {
		return nil, err
	}
	// The CA's key is in the store, which only members reach (mutual TLS
	// with certificates it signed): any member can admit a node, and the
	// cluster does not lose the CA with its first node.
	if _, err := s.Put(ctx, infoKey, infoSchema, Info{Name: name, ID: ca.ClusterID(), CA: string(ca.CertPEM), Key: string(caKey), Created: now.UTC()}); err != nil {
		return nil, fmt.Errorf("cluster: recording the cluster: %w", err)
	}
	st := &State{Name: name, ID: ca.ClusterID(), Address: ip.String(), PeerPort: DefaultPeerPort, ClientPort: DefaultClientPort,
		APIPort: DefaultAPIPort, Created: now.UTC()}
	if err := st.Save(dataDir); err != nil {
		return nil, err
	}
	return st, nil
}

// CreateToken makes a one-time join token valid for ttl and records it.
func CreateToken(ctx context.Context, s *store.Store, dataDir string, ttl time.Duration, by string) (Token, TokenRecord, error) {
	ca, err := storeCA(ctx, s)
	if err != nil {
		return Token{}, TokenRecord{}, err
	}
	t, rec, err := NewToken(ca.Fingerprint(), ttl, time.Now(), by)
	if err != nil {
		return Token{}, TokenRecord{}, err
	}
	if _, err := s.Put(ctx, tokenKeys+t.ID, tokenSchema, rec); err != nil {
		return Token{}, TokenRecord{}, err
	}
	return t, rec, nil
}

// JoinRequest is what a joining node sends.
type JoinRequest struct {
	Token   string `json:"token"`
	Node    string `json:"node"`
	Address string `json:"address"`
	CSR     string `json:"csr"`
}

// JoinResponse is what the cluster answers.
type JoinResponse struct {
	Name           string `json:"name"`
	ID             string `json:"id"`
	CA             string `json:"ca"`
	Cert           string `json:"cert"`
	InitialCluster string `json:"initial_cluster,omitempty"`
	// CRL is the cluster's revocation list (DER).
	CRL []byte `json:"crl"`
	// Client with Endpoints: the node joins without a store member.
	Client    bool     `json:"client,omitempty"`
	Endpoints []string `json:"endpoints,omitempty"`
}

// Admit checks a join request on a node that holds the CA: the token
// opens its record (which is deleted in the same transaction: one use),
// the node's name is free, the request is signed, and the node is added
// to the store as a learner.
func Admit(ctx context.Context, s *store.Store, dataDir string, req JoinRequest) (*JoinResponse, error) {
	st, err := LoadState(dataDir)
	if err != nil {
		return nil, err
	}
	if st == nil {
		return nil, ErrNotMember
	}
	ca, err := storeCA(ctx, s)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrJoin, err)
	}
	tok, err := ParseToken(req.Token)
	if err != nil {
		return nil, err
	}
	if !tok.MatchesCA(ca.Fingerprint()) {
		return nil, fmt.Errorf("%w: the token is for another cluster", ErrJoin)
	}
	it, err := s.Get(ctx, tokenKeys+tok.ID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: unknown or already used token", ErrTokenRefused)
	}
	if err != nil {
		return nil, err
	}
	var rec TokenRecord
	if err := it.Decode(&rec, tokenSchema); err != nil {
		return nil, err
	}
	if err := rec.Check(tok, time.Now()); err != nil {
		return nil, err
	}
	ip := net.ParseIP(req.Address)
	if ip == nil || ip.IsUnspecified() {
		return nil, fmt.Errorf("%w: %q is not an address", ErrJoin, req.Address)
	}
	if _, err := s.Get(ctx, membersPrefix+req.Node); err == nil {
		return nil, fmt.Errorf("%w: a node named %s is already a member (remove it first)", ErrJoin, req.Node)
	}
	certPEM, cert, err := ca.Sign([]byte(req.CSR), req.Node, []net.IP{ip}, time.Now())
	if err != nil {
		return nil, err
	}
	var crl crlRecord
	if it, err := s.Get(ctx, crlKey); err == nil {
		it.Decode(&crl, crlSchema)
	}
	// One use: the token's record goes now, or the join fails.
	del, err := store.OpDelete(tokenKeys + tok.ID)
	if err != nil {
		return nil, err
	}
	res, err := s.Txn(ctx, []store.Cond{store.Unchanged(tokenKeys+tok.ID, it.ModRevision)}, []store.Op{del}, nil)
	if err != nil {
		return nil, err
	}
	if !res.Succeeded {
		return nil, fmt.Errorf("%w: the token was used at the same time", ErrTokenRefused)
	}
	if _, err := s.Put(ctx, certKeys+req.Node, 1, certRecord{Serial: SerialOf(cert), Issued: time.Now().UTC()}); err != nil {
		return nil, err
	}
	resp := &JoinResponse{Name: st.Name, ID: st.ID, CA: string(ca.CertPEM), Cert: string(certPEM), CRL: crl.DER}
	ms, err := s.Members(ctx)
	if err != nil {
		return nil, err
	}
	// Learners count: each will be promoted to a voter.
	members := 0
	for _, m := range ms {
		members++
		if !m.Learner {
			resp.Endpoints = append(resp.Endpoints, m.ClientURLs...)
		}
	}
	if members >= MaxVoters {
		resp.Client = true
		return resp, nil
	}
	resp.Endpoints = nil
	// Just after a member was added or promoted, etcd refuses another
	// change until the leader has heard from a majority for a while
	// ("unhealthy cluster"): wait for it, a few seconds at most.
	var initial string
	deadline := time.Now().Add(15 * time.Second)
	for {
		initial, err = s.AddLearner(ctx, req.Node, store.PeerURL(ip.String(), st.PeerPort))
		if err == nil || !strings.Contains(err.Error(), "unhealthy cluster") || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%w: adding %s to the store: %w", ErrJoin, req.Node, err)
	}
	// Until the new member starts, a record says when it was added: a
	// member that never starts (the joining node died, or never got the
	// answer) is removed again by the controller.
	s.Put(ctx, joiningKeys+req.Node, 1, joining{PeerURL: store.PeerURL(ip.String(), st.PeerPort), Added: time.Now().UTC()})
	resp.InitialCluster = initial
	return resp, nil
}

// Join asks the node at target (ADDRESS or ADDRESS:PORT) to admit this
// node. It checks that target's certificate comes from the CA the token
// names before sending anything, and on success writes the certificates
// and the state; the agent then restarts to start its store member.
// On failure nothing is written.
func Join(ctx context.Context, dataDir, node, address, target, token string) (*State, error) {
	if st, err := LoadState(dataDir); err != nil {
		return nil, err
	} else if st != nil {
		return nil, fmt.Errorf("%w %s", ErrAlreadyMember, st.Name)
	}
	tok, err := ParseToken(token)
	if err != nil {
		return nil, err
	}
	if net.ParseIP(address) == nil {
		return nil, fmt.Errorf("cluster: %q is not this node's address", address)
	}
	if _, _, err := net.SplitHostPort(target); err != nil {
		target = net.JoinHostPort(target, strconv.Itoa(DefaultAPIPort))
	}
	keyPEM, csr, err := NewNodeKey(node)
	if err != nil {
		return nil, err
	}
	// The cluster's certificate is checked by the token's CA hash: the
	// chain the server sends must end in a CA with that fingerprint.
	var caCert *x509.Certificate
	tc := &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			var certs []*x509.Certificate
			for _, r := range raw {
				c, err := x509.ParseCertificate(r)
				if err != nil {
					return err
				}
				certs = append(certs, c)
			}
			for _, c := range certs {
				if c.IsCA && tok.MatchesCA(Fingerprint(c)) {
					caCert = c
				}
			}
			if caCert == nil || len(certs) == 0 {
				return fmt.Errorf("%w: %s does not present the certificate of the cluster the token is for", ErrJoin, target)
			}
			pool := x509.NewCertPool()
			pool.AddCert(caCert)
			_, err := certs[0].Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
			return err
		}}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tc}, Timeout: 30 * time.Second}
	body, _ := json.Marshal(JoinRequest{Token: token, Node: node, Address: address, CSR: string(csr)})
	req, err := http.NewRequestWithContext(ctx, "POST", "https://"+target+"/v1/cluster/admit", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrJoin, target, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Message string `json:"message"`
		}
		json.Unmarshal(b, &e)
		return nil, fmt.Errorf("%w by %s: %s", ErrJoin, target, e.Message)
	}
	var jr JoinResponse
	if err := json.Unmarshal(b, &jr); err != nil {
		return nil, fmt.Errorf("%w: %s answered %q", ErrJoin, target, b)
	}
	if got, err := ParseCert([]byte(jr.CA)); err != nil || !tok.MatchesCA(Fingerprint(got)) {
		return nil, fmt.Errorf("%w: %s sent another CA than the token names", ErrJoin, target)
	}
	if err := writeCert(dataDir, []byte(jr.Cert), keyPEM, []byte(jr.CA)); err != nil {
		return nil, err
	}
	if err := atomicfile.Write(CRLPath(dataDir), jr.CRL, 0o644); err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	st := &State{Name: jr.Name, ID: jr.ID, Address: address, PeerPort: DefaultPeerPort, ClientPort: DefaultClientPort,
		APIPort: DefaultAPIPort, Created: time.Now().UTC(), InitialCluster: jr.InitialCluster, Join: !jr.Client,
		Client: jr.Client, Endpoints: jr.Endpoints}
	if err := st.Save(dataDir); err != nil {
		return nil, err
	}
	return st, nil
}

// Remove takes a node that is gone out of the cluster: its store member
// is removed, its certificate revoked (every member's listeners refuse it
// from the next connection on) and its records deleted. A node that is up
// is refused (it should leave), as are this node and the last voter.
func Remove(ctx context.Context, s *store.Store, self, node string) error {
	if node == self {
		return fmt.Errorf("%w: %s is this node; run \"steady cluster leave\" on a node to take it out", ErrRemove, node)
	}
	if _, err := s.Get(ctx, membersPrefix+node); errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%w: no member %s", store.ErrNotFound, node)
	} else if err != nil {
		return err
	}
	if up, err := NodeUp(ctx, s, node); err != nil {
		return err
	} else if up {
		return fmt.Errorf("%w: %s is up; stop it first, or have it leave", ErrRemove, node)
	}
	target, last, err := storeMember(ctx, s, node)
	if err != nil {
		return err
	}
	if last {
		return fmt.Errorf("%w: %s holds the last voting member of the store", ErrRemove, node)
	}
	if target != nil {
		if err := s.RemoveMember(ctx, node); err != nil {
			return fmt.Errorf("%w: removing the store member of %s: %w", ErrRemove, node, err)
		}
	}
	return forget(ctx, s, node)
}

// forget revokes a node's certificate and deletes its records.
func forget(ctx context.Context, s *store.Store, node string) error {
	ca, err := storeCA(ctx, s)
	if err != nil {
		return err
	}
	if it, err := s.Get(ctx, certKeys+node); err == nil {
		var cr certRecord
		if it.Decode(&cr, 1) == nil {
			if _, err := s.Put(ctx, revokedPrefix+cr.Serial, 1, map[string]any{"node": node, "revoked": time.Now().UTC()}); err != nil {
				return err
			}
		}
	}
	revoked, _, err := s.List(ctx, revokedPrefix)
	if err != nil {
		return err
	}
	var serials []string
	for _, it := range revoked {
		serials = append(serials, strings.TrimPrefix(it.Key, revokedPrefix))
	}
	var old crlRecord
	if it, err := s.Get(ctx, crlKey); err == nil {
		it.Decode(&old, crlSchema)
	}
	der, err := ca.CRL(serials, old.Number+1, time.Now())
	if err != nil {
		return err
	}
	if _, err := s.Put(ctx, crlKey, crlSchema, crlRecord{DER: der, Number: old.Number + 1}); err != nil {
		return err
	}
	for _, k := range []string{membersPrefix + node, certKeys + node, electionPrefix + node, beatsPrefix + node, downPrefix + node, epochsPrefix + node} {
		if _, err := s.Delete(ctx, k); err != nil {
			return err
		}
	}
	return nil
}

// storeMember finds node's store member (nil for a client-only node) and
// whether it is the store's last voter.
func storeMember(ctx context.Context, s *store.Store, node string) (*store.Member, bool, error) {
	ms, err := s.Members(ctx)
	if err != nil {
		return nil, false, err
	}
	voters := 0
	var m *store.Member
	for i := range ms {
		if !ms[i].Learner {
			voters++
		}
		if ms[i].Name == node {
			m = &ms[i]
		}
	}
	return m, m != nil && !m.Learner && voters <= 1, nil
}

// ErrRemove: a node cannot be removed.
var ErrRemove = errors.New("cluster: cannot remove")

// SyncCRL writes the cluster's revocation list to path when the store
// holds a newer one than the file.
func SyncCRL(ctx context.Context, s Store, path string, have int64) (int64, error) {
	it, err := s.Get(ctx, crlKey)
	if err != nil {
		return have, err
	}
	var rec crlRecord
	if err := it.Decode(&rec, crlSchema); err != nil {
		return have, err
	}
	if rec.Number <= have {
		return have, nil
	}
	if err := atomicfile.Write(path, rec.DER, 0o644); err != nil {
		return have, err
	}
	return rec.Number, nil
}

// Leave takes this node out of its cluster: it marks itself leaving,
// ends its membership (the others see it leave), has its certificate
// revoked and its records deleted, and removes its store member, after
// which its store stops. The caller then restarts the agent standalone;
// PrepareStandalone puts the cluster's files aside first.
func Leave(ctx context.Context, s *store.Store, m *Member, dataDir, node string) error {
	st, err := LoadState(dataDir)
	if err != nil {
		return err
	}
	if st == nil {
		return ErrNotMember
	}
	own, last, err := storeMember(ctx, s, node)
	if err != nil {
		return err
	}
	self := own != nil
	if last {
		return fmt.Errorf("%w: %s holds the store's last voting member; the cluster would go with it", ErrRemove, node)
	}
	var mr MemberRecord
	if it, err := s.Get(ctx, membersPrefix+node); err == nil {
		it.Decode(&mr, memberSchema)
	}
	mr.Name, mr.Leaving = node, true
	if _, err := s.Put(ctx, membersPrefix+node, memberSchema, mr); err != nil {
		return err
	}
	if err := m.Leave(ctx); err != nil {
		return err
	}
	if err := forget(ctx, s, node); err != nil {
		return err
	}
	// From here on the node is out: the next start is standalone, also
	// if removing the store member below fails (the others can remove it).
	if err := os.WriteFile(filepath.Join(StateDir(dataDir), "left"), nil, 0o600); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	if self {
		if err := s.RemoveMember(ctx, node); err != nil {
			return fmt.Errorf("%w: removing this node's store member: %w", ErrRemove, err)
		}
	}
	return nil
}

// HasLeft reports whether the node left its cluster and has not started
// standalone since.
func HasLeft(dataDir string) bool {
	_, err := os.Stat(filepath.Join(StateDir(dataDir), "left"))
	return err == nil
}

// PrepareStandalone puts a node's cluster files (state, certificates)
// and its store's data aside, so that the agent starts again as a
// standalone node with an empty store.
func PrepareStandalone(dataDir string) error {
	stamp := time.Now().UTC().Format("20060102T150405")
	for _, d := range []string{StateDir(dataDir), filepath.Join(dataDir, "store")} {
		if _, err := os.Stat(d); err != nil {
			continue
		}
		if err := os.Rename(d, d+".left-"+stamp); err != nil {
			return fmt.Errorf("cluster: %w", err)
		}
	}
	return nil
}
