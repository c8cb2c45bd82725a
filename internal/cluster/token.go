package cluster

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Errors of join tokens.
var (
	ErrBadToken     = errors.New("cluster: malformed join token")
	ErrTokenRefused = errors.New("cluster: join token refused")
)

// tokenPrefix marks the format of a join token.
const tokenPrefix = "stj1"

// Token is a one-time join token: "stj1.ID.SECRET.CAHASH". ID names the
// token's record in the store; only SECRET's hash is stored; CAHASH is
// the first half of the CA certificate's SHA-256, which the joining node
// checks against the certificate the cluster presents before it trusts
// it.
type Token struct {
	ID     string
	Secret string
	CAHash string
}

// TokenRecord is what the cluster keeps of a token.
type TokenRecord struct {
	Hash    string    `json:"hash"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
	By      string    `json:"by,omitempty"` // who made it
}

// NewToken makes a token for the CA with the given fingerprint, valid
// for ttl from now, and the record the cluster keeps of it.
func NewToken(caFingerprint string, ttl time.Duration, now time.Time, by string) (Token, TokenRecord, error) {
	if len(caFingerprint) < 32 {
		return Token{}, TokenRecord{}, fmt.Errorf("cluster: CA fingerprint %q is too short", caFingerprint)
	}
	if ttl <= 0 {
		return Token{}, TokenRecord{}, fmt.Errorf("%w: a token's lifetime must be positive, not %v", ErrBadToken, ttl)
	}
	b := make([]byte, 8+20)
	if _, err := rand.Read(b); err != nil {
		return Token{}, TokenRecord{}, err
	}
	t := Token{ID: hex.EncodeToString(b[:8]), Secret: hex.EncodeToString(b[8:]), CAHash: caFingerprint[:32]}
	return t, TokenRecord{Hash: hashSecret(t.Secret), Created: now.UTC(), Expires: now.Add(ttl).UTC(), By: by}, nil
}

func hashSecret(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func (t Token) String() string {
	return strings.Join([]string{tokenPrefix, t.ID, t.Secret, t.CAHash}, ".")
}

// ParseToken reads a token as "steady cluster token create" printed it.
func ParseToken(s string) (Token, error) {
	parts := strings.Split(strings.TrimSpace(s), ".")
	if len(parts) != 4 || parts[0] != tokenPrefix {
		return Token{}, fmt.Errorf("%w: expected stj1.ID.SECRET.CAHASH as \"steady cluster token create\" prints it", ErrBadToken)
	}
	for i, want := range []int{16, 40, 32} {
		p := parts[i+1]
		if _, err := hex.DecodeString(p); err != nil || len(p) != want {
			return Token{}, fmt.Errorf("%w: part %d is not %d hexadecimal digits", ErrBadToken, i+2, want)
		}
	}
	return Token{ID: parts[1], Secret: parts[2], CAHash: parts[3]}, nil
}

// MatchesCA reports whether the CA with this fingerprint is the one the
// token was made for.
func (t Token) MatchesCA(fingerprint string) bool {
	return len(fingerprint) >= 32 && subtle.ConstantTimeCompare([]byte(fingerprint[:32]), []byte(t.CAHash)) == 1
}

// Check says whether the token opens its record now. The caller makes
// the token one-time by deleting the record in the same transaction that
// admits the node.
func (r TokenRecord) Check(t Token, now time.Time) error {
	if subtle.ConstantTimeCompare([]byte(hashSecret(t.Secret)), []byte(r.Hash)) != 1 {
		return fmt.Errorf("%w: wrong secret", ErrTokenRefused)
	}
	if !now.Before(r.Expires) {
		return fmt.Errorf("%w: it expired at %s", ErrTokenRefused, r.Expires.Format(time.RFC3339))
	}
	return nil
}
