package cluster

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"github.com/steady-ha/steady/internal/atomicfile"
)

// Errors of the PKI.
var (
	ErrBadCSR      = errors.New("cluster: bad certificate request")
	ErrUntrusted   = errors.New("cluster: certificate not issued by this cluster")
	ErrRevoked     = errors.New("cluster: certificate revoked")
	ErrNoCA        = errors.New("cluster: no cluster CA here")
	ErrBadNodeName = errors.New("cluster: invalid node name")
)

// Validity of what the CA signs. Node certificates are renewed by their
// agents well before they end (a later step); the CA lives long.
const (
	CAValidity   = 10 * 365 * 24 * time.Hour
	NodeValidity = 365 * 24 * time.Hour
	// clockSkew backdates certificates, so that a node whose clock is a
	// little behind accepts a certificate made a moment ago.
	clockSkew = 5 * time.Minute
)

var nodeNameRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._-]{0,62})$`)

// CA is the cluster's certificate authority.
type CA struct {
	Cert    *x509.Certificate
	CertPEM []byte
	key     *ecdsa.PrivateKey
}

// ClusterID is the identity of the cluster the CA belongs to (the
// subject's serial number, random at init).
func (ca *CA) ClusterID() string { return ca.Cert.Subject.SerialNumber }

// Name is the cluster's name.
func (ca *CA) Name() string { return ca.Cert.Subject.Organization[0] }

// Fingerprint is the SHA-256 of the CA certificate, hex: what a joining
// node checks before it trusts the cluster.
func (ca *CA) Fingerprint() string { return Fingerprint(ca.Cert) }

// Fingerprint is the SHA-256 of a certificate, hex.
func Fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}

func serial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}

// NewCA makes the CA of a new cluster: an ECDSA P-256 key and a
// self-signed certificate naming the cluster.
func NewCA(name string, now time.Time) (*CA, error) {
	if !nodeNameRE.MatchString(name) {
		return nil, fmt.Errorf("%w: cluster name %q (letters, digits, . _ -, at most 63)", ErrBadNodeName, name)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	sn, err := serial()
	if err != nil {
		return nil, err
	}
	id := make([]byte, 16)
	if _, err := rand.Read(id); err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: sn,
		Subject: pkix.Name{CommonName: "steady cluster CA " + name, Organization: []string{name},
			SerialNumber: hex.EncodeToString(id)},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(CAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("cluster: making the CA: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), key: key}, nil
}

// Files of a node's PKI directory.
const (
	CACertFile   = "ca.crt"
	CAKeyFile    = "ca.key"
	NodeCertFile = "node.crt"
	NodeKeyFile  = "node.key"
)

// Save writes the CA certificate and key into dir (the key 0600).
func (ca *CA) Save(dir string) error {
	kder, err := x509.MarshalECPrivateKey(ca.key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	if err := atomicfile.Write(filepath.Join(dir, CAKeyFile), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		return fmt.Errorf("cluster: saving the CA key: %w", err)
	}
	if err := atomicfile.Write(filepath.Join(dir, CACertFile), ca.CertPEM, 0o644); err != nil {
		return fmt.Errorf("cluster: saving the CA certificate: %w", err)
	}
	return nil
}

// KeyPEM is the CA's private key, PEM.
func (ca *CA) KeyPEM() ([]byte, error) {
	kder, err := x509.MarshalECPrivateKey(ca.key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), nil
}

// ParseCA reads a CA from its certificate and key.
func ParseCA(certPEM, keyPEM []byte) (*CA, error) {
	cert, err := ParseCert(certPEM)
	if err != nil {
		return nil, fmt.Errorf("cluster: the CA certificate: %w", err)
	}
	key, err := ParseKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("cluster: the CA key: %w", err)
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return nil, errors.New("cluster: the CA key does not belong to the CA certificate")
	}
	return &CA{Cert: cert, CertPEM: certPEM, key: key}, nil
}

// LoadCA reads a CA saved by Save.
func LoadCA(dir string) (*CA, error) {
	certPEM, err := os.ReadFile(filepath.Join(dir, CACertFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNoCA
	}
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	cert, err := ParseCert(certPEM)
	if err != nil {
		return nil, fmt.Errorf("cluster: %s: %w", filepath.Join(dir, CACertFile), err)
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, CAKeyFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s has the CA certificate but not its key", ErrNoCA, dir)
	}
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	key, err := ParseKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("cluster: %s: %w", filepath.Join(dir, CAKeyFile), err)
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("cluster: %s does not belong to %s", CAKeyFile, CACertFile)
	}
	return &CA{Cert: cert, CertPEM: certPEM, key: key}, nil
}

// ParseCert reads one PEM certificate.
func ParseCert(b []byte) (*x509.Certificate, error) {
	blk, rest := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" || len(bytes.TrimSpace(rest)) != 0 {
		return nil, errors.New("not exactly one PEM certificate")
	}
	return x509.ParseCertificate(blk.Bytes)
}

// ParseKey reads one PEM EC private key.
func ParseKey(b []byte) (*ecdsa.PrivateKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "EC PRIVATE KEY" {
		return nil, errors.New("not a PEM EC private key")
	}
	return x509.ParseECPrivateKey(blk.Bytes)
}

// NewNodeKey makes a node's key and its certificate request; the key
// never leaves the node.
func NewNodeKey(node string) (keyPEM, csrPEM []byte, err error) {
	if !nodeNameRE.MatchString(node) {
		return nil, nil, fmt.Errorf("%w: %q", ErrBadNodeName, node)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: node}}, key)
	if err != nil {
		return nil, nil, err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil
}

// Sign issues a node certificate for a request: the node's name is the
// request's common name (it must equal node), and the certificate serves
// both ends of TLS, for the node's name and addresses.
func (ca *CA) Sign(csrPEM []byte, node string, addrs []net.IP, now time.Time) ([]byte, *x509.Certificate, error) {
	blk, _ := pem.Decode(csrPEM)
	if blk == nil || blk.Type != "CERTIFICATE REQUEST" {
		return nil, nil, fmt.Errorf("%w: not a PEM certificate request", ErrBadCSR)
	}
	csr, err := x509.ParseCertificateRequest(blk.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrBadCSR, err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, nil, fmt.Errorf("%w: its signature: %w", ErrBadCSR, err)
	}
	if csr.Subject.CommonName != node || !nodeNameRE.MatchString(node) {
		return nil, nil, fmt.Errorf("%w: it names %q, the node is %q", ErrBadCSR, csr.Subject.CommonName, node)
	}
	if _, ok := csr.PublicKey.(*ecdsa.PublicKey); !ok {
		return nil, nil, fmt.Errorf("%w: the key is not ECDSA", ErrBadCSR)
	}
	sn, err := serial()
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: sn,
		Subject:      pkix.Name{CommonName: node, Organization: ca.Cert.Subject.Organization},
		NotBefore:    now.Add(-clockSkew),
		NotAfter:     now.Add(NodeValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:     []string{node},
		IPAddresses:  addrs,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, csr.PublicKey, ca.key)
	if err != nil {
		return nil, nil, fmt.Errorf("cluster: signing %s: %w", node, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), cert, nil
}

// Trust checks certificates presented by peers against the CA and the
// revoked serial numbers.
type Trust struct {
	pool    *x509.CertPool
	revoked func(serial string) bool
}

// NewTrust trusts what ca signed, except what revoked says.
func NewTrust(ca *x509.Certificate, revoked func(serial string) bool) *Trust {
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	if revoked == nil {
		revoked = func(string) bool { return false }
	}
	return &Trust{pool: pool, revoked: revoked}
}

// Verify returns the node a certificate names, or why it is not trusted.
func (t *Trust) Verify(cert *x509.Certificate, now time.Time) (string, error) {
	if _, err := cert.Verify(x509.VerifyOptions{Roots: t.pool, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return "", fmt.Errorf("%w: %s: %w", ErrUntrusted, cert.Subject.CommonName, err)
	}
	if t.revoked(SerialOf(cert)) {
		return "", fmt.Errorf("%w: %s (serial %s)", ErrRevoked, cert.Subject.CommonName, SerialOf(cert))
	}
	return cert.Subject.CommonName, nil
}

// SerialOf is a certificate's serial number, hex.
func SerialOf(c *x509.Certificate) string { return c.SerialNumber.Text(16) }

// CRL makes the certificate revocation list of the given serial numbers
// (hex, as SerialOf writes them), DER-encoded as etcd reads it.
func (ca *CA) CRL(serials []string, number int64, now time.Time) ([]byte, error) {
	tmpl := &x509.RevocationList{Number: big.NewInt(number), ThisUpdate: now.Add(-clockSkew), NextUpdate: now.Add(CAValidity)}
	for _, sn := range serials {
		n, ok := new(big.Int).SetString(sn, 16)
		if !ok {
			return nil, fmt.Errorf("cluster: revoked serial %q is not hexadecimal", sn)
		}
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries, x509.RevocationListEntry{SerialNumber: n, RevocationTime: now})
	}
	return x509.CreateRevocationList(rand.Reader, tmpl, ca.Cert, ca.key)
}

// CheckCRL refuses certificates whose serial numbers the CRL file at
// path lists (a missing file revokes nothing).
func CheckCRL(path string, certs []*x509.Certificate) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	crl, err := x509.ParseRevocationList(b)
	if err != nil {
		return fmt.Errorf("cluster: %s: %w", path, err)
	}
	for _, c := range certs {
		for _, r := range crl.RevokedCertificateEntries {
			if r.SerialNumber.Cmp(c.SerialNumber) == 0 {
				return fmt.Errorf("%w: %s (serial %s)", ErrRevoked, c.Subject.CommonName, SerialOf(c))
			}
		}
	}
	return nil
}
