package identity

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/meshguard/meshguard/trust"
)

// MaxTokenSize bounds a token's length. Verify refuses longer strings before
// parsing anything, and Issue refuses to mint one (an agent with many long
// tags), so every token MeshGuard issues is accepted by every verifier.
// 8 KiB is well inside Envoy's default 60 KiB header limit.
const MaxTokenSize = 8 << 10

// Default issuer and audience of agent tokens.
const (
	DefaultIssuer   = "meshguard"
	DefaultAudience = "meshguard"
)

// maxJTILen bounds jti; ours are 22 characters.
const maxJTILen = 256

// ErrInvalidTTL: a requested token lifetime is negative, under a second or
// beyond the keyring's MaxTTL.
var ErrInvalidTTL = errors.New("invalid token lifetime")

// Claims are an agent token's claims (docs/identity.md). Times have second precision.
type Claims struct {
	Issuer string
	// Subject is the agent id.
	Subject string
	// Audience is the audience the token was accepted for (a token may
	// list several; only the configured one matters).
	Audience  string
	Name      string
	Tier      trust.Tier
	Tags      []string
	IssuedAt  time.Time
	NotBefore time.Time // zero if the token has no nbf
	ExpiresAt time.Time
	ID        string // jti
}

// issuedClaims is the payload Issue writes, in the order it writes it.
type issuedClaims struct {
	Iss  string   `json:"iss"`
	Sub  string   `json:"sub"`
	Aud  string   `json:"aud"`
	Name string   `json:"name"`
	Tier string   `json:"tier"`
	Tags []string `json:"tags"`
	Iat  int64    `json:"iat"`
	Nbf  int64    `json:"nbf"`
	Exp  int64    `json:"exp"`
	Jti  string   `json:"jti"`
}

// wireClaims is the payload Verify reads. Pointers tell a missing claim from
// a zero one; unknown claims are ignored, as RFC 7519 §4 asks.
type wireClaims struct {
	Iss  *string      `json:"iss"`
	Sub  *string      `json:"sub"`
	Aud  audience     `json:"aud"`
	Name string       `json:"name"`
	Tier *string      `json:"tier"`
	Tags []string     `json:"tags"`
	Iat  *numericDate `json:"iat"`
	Nbf  *numericDate `json:"nbf"`
	Exp  *numericDate `json:"exp"`
	Jti  *string      `json:"jti"`
}

// maxAudiences bounds an aud array.
const maxAudiences = 16

// audience is RFC 7519 "aud": one string or an array of strings.
type audience []string

func (a *audience) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*a = audience{s}
		return nil
	}
	var list []string
	if err := json.Unmarshal(b, &list); err != nil {
		return errors.New("aud: expected a string or an array of strings")
	}
	if len(list) > maxAudiences {
		return fmt.Errorf("aud: more than %d entries", maxAudiences)
	}
	*a = list
	return nil
}

// maxNumericDate is year 5138: far beyond any real token, small enough that
// time arithmetic on it cannot overflow.
const maxNumericDate = 1e11

// numericDate is RFC 7519 NumericDate, read as whole seconds. Fractions are
// allowed by the RFC and truncated; strings, negatives, NaN and absurd
// values are refused.
type numericDate int64

func (d *numericDate) UnmarshalJSON(b []byte) error {
	s := string(bytes.TrimSpace(b))
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n < 0 || n > maxNumericDate {
			return errors.New("NumericDate out of range")
		}
		*d = numericDate(n)
		return nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || f < 0 || f > maxNumericDate {
		return errors.New("expected a NumericDate (seconds since 1970)")
	}
	*d = numericDate(f)
	return nil
}

func (d *numericDate) time() time.Time { return time.Unix(int64(*d), 0).UTC() }

// IssuerConfig configures an Issuer.
type IssuerConfig struct {
	// Keys supplies the signing key (required).
	Keys KeyringSource
	// Issuer and Audience go into iss and aud (DefaultIssuer and
	// DefaultAudience if empty). The Verifier must be configured alike.
	Issuer, Audience string
	// DefaultTTL is used when Issue is given 0. If zero, DefaultTTL (24h)
	// is used, capped at the keyring's MaxTTL.
	DefaultTTL time.Duration
	// Now is the clock (time.Now if nil).
	Now func() time.Time
}

// Issuer mints agent tokens with the keyring's current key.
type Issuer struct {
	keys       KeyringSource
	iss, aud   string
	defaultTTL time.Duration
	now        func() time.Time
}

// NewIssuer checks cfg and returns an Issuer.
func NewIssuer(cfg IssuerConfig) (*Issuer, error) {
	if cfg.Keys == nil {
		return nil, errors.New("identity: NewIssuer: Keys is required")
	}
	if cfg.Issuer == "" {
		cfg.Issuer = DefaultIssuer
	}
	if cfg.Audience == "" {
		cfg.Audience = DefaultAudience
	}
	if cfg.DefaultTTL != 0 && cfg.DefaultTTL < time.Second {
		return nil, fmt.Errorf("identity: NewIssuer: %w: default TTL %s is under 1s", ErrInvalidTTL, cfg.DefaultTTL)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Issuer{keys: cfg.Keys, iss: cfg.Issuer, aud: cfg.Audience, defaultTTL: cfg.DefaultTTL, now: cfg.Now}, nil
}

// Issue signs a token for agent, valid for ttl (the default TTL if 0). The
// agent must be valid and active; ttl must lie between 1s and the keyring's
// MaxTTL (a longer lifetime is an error, not silently shortened, so the
// caller learns the limit). nbf equals iat.
func (i *Issuer) Issue(agent Agent, ttl time.Duration) (string, Claims, error) {
	ring := i.keys.Keyring()
	if ttl == 0 {
		ttl = i.defaultTTL
		if ttl == 0 {
			ttl = min(DefaultTTL, ring.MaxTTL())
		}
	}
	if ttl < time.Second || ttl > ring.MaxTTL() {
		return "", Claims{}, fmt.Errorf("issuing token: %w: %s is outside 1s..%s", ErrInvalidTTL, ttl, ring.MaxTTL())
	}
	if !ValidAgentID(agent.ID) {
		return "", Claims{}, fmt.Errorf("issuing token: %w: id %q is not an agent id", ErrInvalidAgent, agent.ID)
	}
	if err := agent.Validate(); err != nil {
		return "", Claims{}, fmt.Errorf("issuing token for %s: %w", agent.ID, err)
	}
	if !agent.Active() {
		return "", Claims{}, fmt.Errorf("issuing token: %w: agent %s is %s", ErrInvalidAgent, agent.ID, agent.Status)
	}
	key := ring.current
	if key == nil {
		return "", Claims{}, fmt.Errorf("issuing token for %s: %w", agent.ID, ErrNoSigningKey)
	}

	// Whole seconds on both ends, so exp-iat never exceeds ttl (and a
	// MaxTTL token is not refused by the verifier's lifetime check).
	iat := i.now().Unix()
	exp := iat + int64(ttl/time.Second)
	tags := agent.Tags
	if tags == nil {
		tags = []string{} // always an array, so consumers need no null case
	}
	wc := issuedClaims{
		Iss: i.iss, Sub: agent.ID, Aud: i.aud, Name: agent.Name,
		Tier: agent.TrustTier.String(), Tags: tags,
		Iat: iat, Nbf: iat, Exp: exp, Jti: newJTI(),
	}
	payload, err := json.Marshal(wc)
	if err != nil {
		return "", Claims{}, fmt.Errorf("issuing token for %s: encoding claims: %w", agent.ID, err)
	}

	buf, err := key.signCompact(key.header, payload)
	if err != nil {
		return "", Claims{}, fmt.Errorf("issuing token for %s: %w", agent.ID, err)
	}
	if len(buf) > MaxTokenSize {
		return "", Claims{}, fmt.Errorf("issuing token for %s: %w: the token would be %d bytes, over the %d verifiers accept (shorten tags or name)",
			agent.ID, ErrInvalidAgent, len(buf), MaxTokenSize)
	}
	claims := Claims{
		Issuer: i.iss, Subject: agent.ID, Audience: i.aud, Name: agent.Name,
		Tier: agent.TrustTier, Tags: append([]string(nil), agent.Tags...),
		IssuedAt: time.Unix(iat, 0).UTC(), NotBefore: time.Unix(iat, 0).UTC(),
		ExpiresAt: time.Unix(exp, 0).UTC(), ID: wc.Jti,
	}
	return string(buf), claims, nil
}

// signCompact returns header.payload.signature, built in one buffer.
func (k *signingKey) signCompact(header string, payload []byte) ([]byte, error) {
	n := len(header) + 1 + b64.EncodedLen(len(payload))
	buf := make([]byte, 0, n+1+b64.EncodedLen(es256SigLen))
	buf = append(buf, header...)
	buf = append(buf, '.')
	buf = b64.AppendEncode(buf, payload)
	sig, err := k.sign(buf)
	if err != nil {
		return nil, err
	}
	buf = append(buf, '.')
	return b64.AppendEncode(buf, sig), nil
}

// newJTI returns 128 random bits, base64url: unique without coordination.
func newJTI() string {
	var b [16]byte
	// crypto/rand.Read never returns an error on supported platforms (Go 1.24+).
	_, _ = rand.Read(b[:])
	return b64.EncodeToString(b[:])
}
