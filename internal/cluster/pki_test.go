package cluster

import (
	"crypto/tls"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestCAAndNodeCertificates(t *testing.T) {
	now := time.Now()
	ca, err := NewCA("prod", now)
	if err != nil {
		t.Fatal(err)
	}
	if ca.Name() != "prod" || len(ca.ClusterID()) != 32 || len(ca.Fingerprint()) != 64 {
		t.Fatalf("CA: %s %s %s", ca.Name(), ca.ClusterID(), ca.Fingerprint())
	}
	dir := t.TempDir()
	if err := ca.Save(dir); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(filepath.Join(dir, CAKeyFile)); fi.Mode().Perm() != 0o600 {
		t.Fatalf("CA key mode %v", fi.Mode())
	}
	ca2, err := LoadCA(dir)
	if err != nil || ca2.Fingerprint() != ca.Fingerprint() {
		t.Fatalf("load: %v", err)
	}

	keyPEM, csr, err := NewNodeKey("n2")
	if err != nil {
		t.Fatal(err)
	}
	certPEM, cert, err := ca2.Sign(csr, "n2", []net.IP{net.ParseIP("198.18.0.12")}, now)
	if err != nil {
		t.Fatal(err)
	}
	revoked := map[string]bool{}
	trust := NewTrust(ca.Cert, func(s string) bool { return revoked[s] })
	if node, err := trust.Verify(cert, now); err != nil || node != "n2" {
		t.Fatalf("verify: %q %v", node, err)
	}
	// The pair works for TLS on both ends.
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		t.Fatal(err)
	}
	if err := cert.VerifyHostname("198.18.0.12"); err != nil {
		t.Fatal(err)
	}
	revoked[SerialOf(cert)] = true
	if _, err := trust.Verify(cert, now); !errors.Is(err, ErrRevoked) {
		t.Fatalf("revoked: %v", err)
	}

	// A certificate from another cluster is not trusted.
	other, _ := NewCA("prod", now)
	_, csr3, _ := NewNodeKey("n3")
	_, foreign, _ := other.Sign(csr3, "n3", nil, now)
	if _, err := trust.Verify(foreign, now); !errors.Is(err, ErrUntrusted) {
		t.Fatalf("foreign: %v", err)
	}
	// Nor an expired one.
	if _, err := NewTrust(ca.Cert, nil).Verify(cert, now.Add(NodeValidity+time.Hour)); !errors.Is(err, ErrUntrusted) {
		t.Fatalf("expired: %v", err)
	}

	// Bad requests.
	if _, _, err := ca.Sign(csr, "n9", nil, now); !errors.Is(err, ErrBadCSR) || !strings.Contains(err.Error(), `names "n2"`) {
		t.Fatalf("a request for another name: %v", err)
	}
	if _, _, err := ca.Sign([]byte("garbage"), "n2", nil, now); !errors.Is(err, ErrBadCSR) {
		t.Fatalf("garbage: %v", err)
	}
	if _, _, err := NewNodeKey("bad name"); !errors.Is(err, ErrBadNodeName) {
		t.Fatalf("bad name: %v", err)
	}
	if _, err := LoadCA(t.TempDir()); !errors.Is(err, ErrNoCA) {
		t.Fatalf("no CA: %v", err)
	}
	os.WriteFile(filepath.Join(dir, CAKeyFile), []byte(""), 0o600)
	if _, err := LoadCA(dir); err == nil {
		t.Fatal("an empty key file loaded")
	}
}

func TestTokens(t *testing.T) {
	now := time.Now()
	ca, _ := NewCA("prod", now)
	tok, rec, err := NewToken(ca.Fingerprint(), time.Hour, now, "root")
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := ParseToken(" " + tok.String() + "\n")
	if err != nil || parsed != tok {
		t.Fatalf("parse: %v %+v", err, parsed)
	}
	if !parsed.MatchesCA(ca.Fingerprint()) {
		t.Fatal("the token does not match its CA")
	}
	other, _ := NewCA("prod", now)
	if parsed.MatchesCA(other.Fingerprint()) {
		t.Fatal("the token matches another cluster's CA")
	}
	if err := rec.Check(parsed, now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := rec.Check(parsed, now.Add(2*time.Hour)); !errors.Is(err, ErrTokenRefused) || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("expired: %v", err)
	}
	wrong := parsed
	wrong.Secret = strings.Repeat("0", 40)
	if err := rec.Check(wrong, now); !errors.Is(err, ErrTokenRefused) || !strings.Contains(err.Error(), "wrong secret") {
		t.Fatalf("wrong secret: %v", err)
	}
	if strings.Contains(rec.Hash, tok.Secret) {
		t.Fatal("the record holds the secret")
	}
	for _, bad := range []string{"", "stj1.a.b.c", "stj2." + tok.ID + "." + tok.Secret + "." + tok.CAHash, strings.Replace(tok.String(), tok.ID, "zzzzzzzzzzzzzzzz", 1)} {
		if _, err := ParseToken(bad); !errors.Is(err, ErrBadToken) {
			t.Errorf("%q: %v", bad, err)
		}
	}
	if _, _, err := NewToken(ca.Fingerprint(), 0, now, ""); !errors.Is(err, ErrBadToken) {
		t.Fatalf("zero ttl: %v", err)
	}
}
