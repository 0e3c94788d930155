package identity

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/meshguard/meshguard/trust"
)

// MinHS256SecretLen is the shortest JWT_SECRET accepted: RFC 7518 §3.2
// requires an HS256 key of at least the hash size, 256 bits.
const MinHS256SecretLen = 32

// RevokedTokens reports whether a token id has been revoked. Optional: a nil
// RevokedTokens means no token is revoked individually (agents still are).
type RevokedTokens interface {
	IsTokenRevoked(ctx context.Context, jti string) (bool, error)
}

// VerifierConfig configures a Verifier.
type VerifierConfig struct {
	// Keys supplies the verification keys (required).
	Keys KeyringSource
	// Agents looks up the token's agent (required).
	Agents AgentSource
	// Revoked, if set, is asked about every token's jti.
	Revoked RevokedTokens
	// Issuer and Audience are matched exactly against iss and aud
	// (DefaultIssuer and DefaultAudience if empty).
	Issuer, Audience string
	// HS256Secret (JWT_SECRET), if set, also accepts HS256 tokens signed
	// with it. At least MinHS256SecretLen bytes. Without it HS256 is
	// refused outright, which is what defeats the key-confusion attack.
	HS256Secret []byte
	// Now is the clock (time.Now if nil).
	Now func() time.Time
}

// Verified is the outcome of a successful Verify. It may be shared with a
// cache: treat Claims.Tags and the Agent's slices and maps as read-only.
type Verified struct {
	Claims Claims
	// Agent is the agent as AgentSource returned it during verification.
	Agent Agent
	// Tier is the effective tier: the lower of the token's tier and the
	// agent's current tier, so a demotion bites before the token expires.
	Tier trust.Tier
	// KID and Alg are the verifying key's id (empty for HS256) and alg.
	KID, Alg string
}

// Verifier checks agent tokens. It is safe for concurrent use.
type Verifier struct {
	keys     KeyringSource
	agents   AgentSource
	revoked  RevokedTokens
	iss, aud string
	secret   []byte
	now      func() time.Time
}

// NewVerifier checks cfg and returns a Verifier.
func NewVerifier(cfg VerifierConfig) (*Verifier, error) {
	if cfg.Keys == nil || cfg.Agents == nil {
		return nil, errors.New("identity: NewVerifier: Keys and Agents are required")
	}
	if cfg.HS256Secret != nil && len(cfg.HS256Secret) < MinHS256SecretLen {
		return nil, fmt.Errorf("identity: NewVerifier: HS256 secret (JWT_SECRET) is %d bytes; at least %d are required", len(cfg.HS256Secret), MinHS256SecretLen)
	}
	if cfg.Issuer == "" {
		cfg.Issuer = DefaultIssuer
	}
	if cfg.Audience == "" {
		cfg.Audience = DefaultAudience
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	v := &Verifier{keys: cfg.Keys, agents: cfg.Agents, revoked: cfg.Revoked,
		iss: cfg.Issuer, aud: cfg.Audience, now: cfg.Now}
	if cfg.HS256Secret != nil {
		v.secret = append([]byte(nil), cfg.HS256Secret...) // the caller may reuse its slice
	}
	return v, nil
}

// Verify checks token completely and returns its claims, the agent and the
// effective tier. Rejections match ErrInvalidToken and one specific
// sentinel; dependency failures match ErrUnavailable (fail closed).
//
// Order matters: nothing in the payload is believed before the signature
// checks out, and the cheap checks run before the store is asked.
func (v *Verifier) Verify(ctx context.Context, token string) (Verified, error) {
	now := v.now()
	res, err := v.verifyToken(token, now)
	if err != nil {
		return Verified{}, err
	}
	if err := v.checkAgent(ctx, &res); err != nil {
		return Verified{}, err
	}
	return res, nil
}

// header is the protected header, read by exact key (encoding/json's
// struct decoding would also accept "ALG" or "Kid").
type header struct{ alg, kid, typ string }

func parseHeader(seg string) (header, error) {
	raw, err := b64.DecodeString(seg)
	if err != nil {
		return header{}, fmt.Errorf("%w: header is not base64url", ErrTokenMalformed)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		return header{}, fmt.Errorf("%w: header is not a JSON object", ErrTokenMalformed)
	}
	var h header
	for name, val := range m {
		var dst *string
		switch name {
		case "alg":
			dst = &h.alg
		case "kid":
			dst = &h.kid
		case "typ":
			dst = &h.typ
		default:
			// We issue alg, kid and typ only. Everything else (crit,
			// b64, jku, jwk, x5u, x5c, cty, ...) would change how the
			// token is read or where its key comes from: refuse it.
			return header{}, fmt.Errorf("%w: unsupported header parameter (only alg, kid and typ are accepted)", ErrTokenMalformed)
		}
		if err := json.Unmarshal(val, dst); err != nil {
			return header{}, fmt.Errorf("%w: header parameter %s is not a string", ErrTokenMalformed, name)
		}
	}
	// Checked last: by now every name is alg, kid or typ and every value a
	// string, so the walk stops by the fourth member whatever the size.
	if err := checkMembers(raw, headerNames); err != nil {
		return header{}, fmt.Errorf("%w: header: %w", ErrTokenMalformed, err)
	}
	return h, nil
}

// TokenAlg returns the alg a compact JWS's protected header names, read by
// the verifier's own strict header parser. It checks nothing else — no
// payload, no signature — so it only routes a token (the wasm filter defers
// HS256 tokens it cannot verify), never trusts one: any header it refuses,
// the verifier refuses too.
func TokenAlg(token string) (string, error) {
	if len(token) > MaxTokenSize {
		return "", fmt.Errorf("%w: %d bytes, limit %d", ErrTokenTooLarge, len(token), MaxTokenSize)
	}
	seg, _, ok := strings.Cut(token, ".")
	if !ok || seg == "" {
		return "", fmt.Errorf("%w: expected header.payload.signature", ErrTokenMalformed)
	}
	h, err := parseHeader(seg)
	if err != nil {
		return "", err
	}
	return h.alg, nil
}

// verifyToken does every check of an agent token that needs no I/O: format,
// alg, kid, signature and claims.
func (v *Verifier) verifyToken(token string, now time.Time) (Verified, error) {
	jws, err := v.verifyJWS(token, now, typJWT)
	if err != nil {
		return Verified{}, err
	}
	res := Verified{Alg: jws.alg, KID: jws.kid}
	var wc wireClaims
	if err := decodePayload(jws.payload, &wc, agentClaimNames); err != nil {
		return Verified{}, err
	}
	if res.Claims, err = v.checkClaims(&wc, now, jws.ring.MaxTTL()); err != nil {
		return Verified{}, err
	}
	return res, nil
}

// Token types (the JWS "typ" header). Agent tokens are plain JWTs;
// delegation tokens carry their own type so neither can stand in for the
// other, whatever their claims say.
const (
	typJWT        = "JWT"
	typDelegation = "delegation+jwt"
)

// verifiedJWS is a compact JWS whose signature checked out.
type verifiedJWS struct {
	ring     *Keyring // the keyring it was checked against
	kid, alg string   // kid is empty for HS256
	payload  []byte   // decoded, not yet parsed
}

// verifyJWS checks the compact serialization, the header, the pinned
// algorithm and the signature, and returns the raw payload. typ is the token
// type expected: typJWT (also accepted when absent) or typDelegation (only
// asymmetric keys, never HS256, mint those).
func (v *Verifier) verifyJWS(token string, now time.Time, typ string) (verifiedJWS, error) {
	switch {
	case len(token) > MaxTokenSize:
		return verifiedJWS{}, fmt.Errorf("%w: %d bytes, limit %d", ErrTokenTooLarge, len(token), MaxTokenSize)
	case token == "":
		return verifiedJWS{}, fmt.Errorf("%w: empty", ErrTokenMalformed)
	}
	hdrEnd := strings.IndexByte(token, '.')
	sigStart := strings.LastIndexByte(token, '.')
	if hdrEnd <= 0 || sigStart == hdrEnd || strings.Count(token, ".") != 2 {
		return verifiedJWS{}, fmt.Errorf("%w: expected header.payload.signature", ErrTokenMalformed)
	}
	hdrSeg, payloadSeg, sigSeg := token[:hdrEnd], token[hdrEnd+1:sigStart], token[sigStart+1:]
	if payloadSeg == "" || sigSeg == "" {
		return verifiedJWS{}, fmt.Errorf("%w: empty payload or signature", ErrTokenMalformed)
	}

	h, err := parseHeader(hdrSeg)
	if err != nil {
		return verifiedJWS{}, err
	}
	// Pin the algorithm before touching any key: the header is
	// attacker-controlled and must never choose how it is verified.
	switch h.alg {
	case AlgEdDSA, AlgES256:
	case AlgHS256:
		if v.secret == nil || typ != typJWT {
			return verifiedJWS{}, fmt.Errorf("%w: HS256 is not enabled (no JWT_SECRET)", ErrTokenAlg)
		}
	case "":
		return verifiedJWS{}, fmt.Errorf("%w: alg missing", ErrTokenAlg)
	default:
		// Covers "none" in any spelling.
		return verifiedJWS{}, fmt.Errorf("%w: accepted algorithms are %s, %s and (with JWT_SECRET) %s", ErrTokenAlg, AlgEdDSA, AlgES256, AlgHS256)
	}
	switch {
	case typ == typJWT && h.typ != "" && !strings.EqualFold(h.typ, typJWT):
		return verifiedJWS{}, fmt.Errorf("%w: typ must be JWT", ErrTokenMalformed)
	case typ == typDelegation && h.typ != typDelegation:
		return verifiedJWS{}, fmt.Errorf("%w: typ must be %s", ErrTokenMalformed, typDelegation)
	}

	sig, err := b64.DecodeString(sigSeg)
	if err != nil {
		return verifiedJWS{}, fmt.Errorf("%w: signature is not base64url", ErrTokenMalformed)
	}
	input := token[:sigStart]
	// One keyring for the whole check, even if a Reload lands meanwhile.
	res := verifiedJWS{ring: v.keys.Keyring(), alg: h.alg}
	var key *signingKey
	if h.kid != "" {
		key = res.ring.lookup(h.kid, now)
	}
	switch {
	case key != nil:
		// The kid's key decides the algorithm; anything else, notably
		// HS256 with the public key as the secret, is refused here.
		if h.alg != key.alg {
			return verifiedJWS{}, fmt.Errorf("%w: the key named by kid is %s", ErrTokenAlg, key.alg)
		}
		if !key.verify([]byte(input), sig) {
			return verifiedJWS{}, fmt.Errorf("%w: %s", ErrTokenSignature, key.alg)
		}
		res.kid = key.kid
	case h.alg == AlgHS256:
		// The secret is ours alone, so an HS256 token needs no kid (and a
		// kid that is not one of our asymmetric keys is ignored).
		mac := hmac.New(sha256.New, v.secret)
		mac.Write([]byte(input))
		if !hmac.Equal(mac.Sum(nil), sig) { // constant time
			return verifiedJWS{}, fmt.Errorf("%w: HS256", ErrTokenSignature)
		}
	case h.kid == "":
		return verifiedJWS{}, fmt.Errorf("%w: %s token without kid", ErrTokenKID, h.alg)
	default:
		return verifiedJWS{}, fmt.Errorf("%w: kid is not a current or unexpired retired key", ErrTokenKID)
	}
	if res.payload, err = b64.DecodeString(payloadSeg); err != nil {
		return verifiedJWS{}, fmt.Errorf("%w: payload is not base64url", ErrTokenMalformed)
	}
	return res, nil
}

// decodePayload parses a verified payload into dst, telling bad JSON from
// claims of the wrong type, and refuses duplicate claims and other
// spellings of the claims in names (checkMembers).
func decodePayload(raw []byte, dst any, names []string) error {
	if err := json.Unmarshal(raw, dst); err != nil {
		var syn *json.SyntaxError
		if errors.As(err, &syn) || !json.Valid(raw) {
			return fmt.Errorf("%w: payload is not JSON", ErrTokenMalformed)
		}
		return fmt.Errorf("%w: a claim has the wrong type (expected strings for iss, sub, name, tier, jti, scope; string or array for aud; string array for tags; numbers for iat, nbf, exp)", ErrTokenClaims)
	}
	if err := checkMembers(raw, names); err != nil {
		return fmt.Errorf("%w: claims: %w", ErrTokenMalformed, err)
	}
	return nil
}

// checkClaims validates the payload against the configuration and now.
func (v *Verifier) checkClaims(wc *wireClaims, now time.Time, maxTTL time.Duration) (Claims, error) {
	if wc.Iss == nil || *wc.Iss != v.iss {
		return Claims{}, fmt.Errorf("%w: expected %q", ErrTokenIssuer, v.iss)
	}
	found := false
	for _, a := range wc.Aud {
		found = found || a == v.aud
	}
	if !found {
		return Claims{}, fmt.Errorf("%w: expected %q", ErrTokenAudience, v.aud)
	}
	if wc.Exp == nil || wc.Iat == nil {
		return Claims{}, fmt.Errorf("%w: exp and iat are required", ErrTokenClaims)
	}
	exp, iat := wc.Exp.time(), wc.Iat.time()
	if !now.Before(exp.Add(Leeway)) {
		return Claims{}, fmt.Errorf("%w: %s ago (leeway %s)", ErrTokenExpired, now.Sub(exp).Truncate(time.Second), Leeway)
	}
	var nbf time.Time
	if wc.Nbf != nil {
		nbf = wc.Nbf.time()
		if now.Add(Leeway).Before(nbf) {
			return Claims{}, fmt.Errorf("%w: nbf is %s ahead (leeway %s)", ErrTokenNotYetValid, nbf.Sub(now).Truncate(time.Second), Leeway)
		}
	}
	if now.Add(Leeway).Before(iat) {
		return Claims{}, fmt.Errorf("%w: iat is %s ahead (leeway %s)", ErrTokenNotYetValid, iat.Sub(now).Truncate(time.Second), Leeway)
	}
	if !exp.After(iat) {
		return Claims{}, fmt.Errorf("%w: exp is not after iat", ErrTokenClaims)
	}
	if exp.Sub(iat) > maxTTL {
		return Claims{}, fmt.Errorf("%w: lifetime %s exceeds the maximum %s", ErrTokenClaims, exp.Sub(iat), maxTTL)
	}
	if wc.Sub == nil || !ValidAgentID(*wc.Sub) {
		return Claims{}, fmt.Errorf("%w: sub must be an agent id (%s...)", ErrTokenClaims, IDPrefix)
	}
	if wc.Tier == nil {
		return Claims{}, fmt.Errorf("%w: tier is required", ErrTokenClaims)
	}
	tier, err := trust.Parse(*wc.Tier)
	if err != nil {
		return Claims{}, fmt.Errorf("%w: tier must be one of %s", ErrTokenClaims, strings.Join(trust.Names(), ", "))
	}
	if wc.Jti == nil || !ValidJTI(*wc.Jti) {
		// A jti that could not be named could not be revoked.
		return Claims{}, fmt.Errorf("%w: jti must be 1 to %d visible ASCII characters", ErrTokenJTI, maxJTILen)
	}
	if len(wc.Name) > MaxNameLen {
		return Claims{}, fmt.Errorf("%w: name longer than %d", ErrTokenClaims, MaxNameLen)
	}
	if len(wc.Tags) > MaxTags {
		return Claims{}, fmt.Errorf("%w: more than %d tags", ErrTokenClaims, MaxTags)
	}
	for _, t := range wc.Tags {
		if len(t) > maxValueLen {
			return Claims{}, fmt.Errorf("%w: a tag is longer than %d", ErrTokenClaims, maxValueLen)
		}
	}
	return Claims{
		Issuer: *wc.Iss, Subject: *wc.Sub, Audience: v.aud, Name: wc.Name,
		Tier: tier, Tags: wc.Tags, IssuedAt: iat, NotBefore: nbf, ExpiresAt: exp, ID: *wc.Jti,
	}, nil
}

// checkAgent asks the store about the token's agent and jti and sets the
// effective tier. A store failure is ErrUnavailable, never a rejection, so a
// database outage cannot be mistaken for (or turned into) a bad credential.
func (v *Verifier) checkAgent(ctx context.Context, res *Verified) error {
	sub := res.Claims.Subject
	agent, err := v.agents.GetAgent(ctx, sub)
	switch {
	case errors.Is(err, ErrNotFound):
		return fmt.Errorf("%w: no agent %s", ErrAgentUnknown, sub)
	case err != nil:
		return fmt.Errorf("%w: looking up agent %s: %w", ErrUnavailable, sub, err)
	case agent.ID != sub:
		return fmt.Errorf("%w: agent source returned %s for %s", ErrUnavailable, agent.ID, sub)
	case !agent.Active():
		return fmt.Errorf("%w: %s", ErrAgentRevoked, sub)
	case !agent.TrustTier.Valid():
		// trust.Min with an out-of-range tier would hand out the
		// token's tier unchecked; a corrupt row must fail closed.
		return fmt.Errorf("%w: agent %s has invalid tier %d in the store", ErrUnavailable, sub, agent.TrustTier)
	}
	if err := v.checkRevoked(ctx, &res.Claims); err != nil {
		return err
	}
	res.Agent = agent
	res.Tier = trust.Min(res.Claims.Tier, agent.TrustTier)
	return nil
}

// checkRevoked asks the revocation list about the token's jti. The cache
// asks it too, on every hit: a revocation must bite from the next request
// on, whatever was cached before it.
func (v *Verifier) checkRevoked(ctx context.Context, c *Claims) error {
	if v.revoked == nil {
		return nil
	}
	revoked, err := v.revoked.IsTokenRevoked(ctx, c.ID)
	if err != nil {
		return fmt.Errorf("%w: checking token revocation for agent %s: %w", ErrUnavailable, c.Subject, err)
	}
	if revoked {
		return fmt.Errorf("%w: a token of agent %s", ErrTokenRevoked, c.Subject)
	}
	return nil
}

// ToRevoke reads a token presented for revocation: it must be one
// MeshGuard signed — its signature valid with a current or retired key (or
// JWT_SECRET), its typ an agent token's — with a sub shaped like an agent
// id, a valid jti and an exp. Unlike Verify it accepts a token that has
// expired, is not yet valid, or whose agent is revoked or unknown: a leaked
// token is revocable whatever else is wrong with it. Nothing of the token
// appears in an error.
func (v *Verifier) ToRevoke(token string) (RevokedToken, error) {
	jws, err := v.verifyJWS(token, v.now(), typJWT)
	if err != nil {
		return RevokedToken{}, err
	}
	var wc wireClaims
	if err := decodePayload(jws.payload, &wc, agentClaimNames); err != nil {
		return RevokedToken{}, err
	}
	switch {
	case wc.Sub == nil || !ValidAgentID(*wc.Sub):
		return RevokedToken{}, fmt.Errorf("%w: sub must be an agent id (%s...)", ErrTokenClaims, IDPrefix)
	case wc.Jti == nil || !ValidJTI(*wc.Jti):
		return RevokedToken{}, fmt.Errorf("%w: jti must be 1 to %d visible ASCII characters", ErrTokenJTI, maxJTILen)
	case wc.Exp == nil:
		return RevokedToken{}, fmt.Errorf("%w: exp is required", ErrTokenClaims)
	}
	return RevokedToken{JTI: *wc.Jti, AgentID: *wc.Sub, ExpiresAt: wc.Exp.time()}, nil
}

// ToRevokeByJTI is the revocation of the token with jti of agent agentID,
// the token itself not at hand. Its exp is unknown, so it is taken as the
// latest a token the verifier accepts now could have: one issued up to
// Leeway ahead (another replica's clock, an HS256 issuer sharing
// JWT_SECRET) with the keyring's MaxTTL.
func (v *Verifier) ToRevokeByJTI(jti, agentID string) (RevokedToken, error) {
	switch {
	case !ValidJTI(jti):
		return RevokedToken{}, fmt.Errorf("%w: jti must be 1 to %d visible ASCII characters", ErrInvalidRevocation, maxJTILen)
	case !ValidAgentID(agentID):
		return RevokedToken{}, fmt.Errorf("%w: agentId must be an agent id (%s...)", ErrInvalidRevocation, IDPrefix)
	}
	return RevokedToken{JTI: jti, AgentID: agentID, ExpiresAt: v.now().Add(Leeway + v.keys.Keyring().MaxTTL())}, nil
}
