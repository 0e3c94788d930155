package identity

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/meshguard/meshguard/internal/edge"
)

// Delegation tokens (docs/policies.md#delegation, docs/api.md). When agent A's
// call reaches agent B through the mesh, MeshGuard hands B a token saying "B
// acts for A": sub is the chain's root and nested RFC 8693 `act` claims name
// every actor, newest outermost. B forwards it in X-MeshGuard-Delegation on its
// onward calls.
//
// A delegation token is not a credential: the actor must still present its
// own agent token. To keep the two apart whatever their claims say, a
// delegation token has its own JWS type (typ "delegation+jwt") and its own
// audience (the agent audience + DelegationAudienceSuffix), so neither
// Verify nor Envoy's jwt_authn (which checks aud) accepts one as the other.

// DelegationAudienceSuffix turns the agent audience into the delegation
// audience ("meshguard" → "meshguard:delegation").
const DelegationAudienceSuffix = ":delegation"

// Bounds on what a delegation token may carry.
const (
	// MaxActors bounds the act nesting a token may carry; the policy
	// engine's own cap (5 delegating agents) is far below it.
	MaxActors   = 16
	maxScope    = 64
	maxScopeLen = 1024
)

// ErrInvalidGrant: a grant to mint is incomplete or out of bounds.
var ErrInvalidGrant = errors.New("invalid delegation grant")

// DelegationGrant is what a delegation token says.
type DelegationGrant struct {
	// Root is the agent that started the task (the token's sub).
	Root string
	// Actors are the agents the task was handed to, oldest first; the
	// last is the current actor, the only one the token is good for.
	Actors []string
	// Scope lists the action patterns the chain may still perform; nil
	// means the token adds no limit (policy ceilings still apply).
	Scope []string
	// MaxChain caps how many delegating agents the chain may grow to;
	// 0 means only policy limits apply.
	MaxChain  int
	IssuedAt  time.Time
	ExpiresAt time.Time
	ID        string // jti
	// Traceparent is the W3C trace context of the decision that minted
	// the token (its span as the parent), so a hop whose agent dropped
	// the traceparent still joins the chain's trace; "" for none.
	Traceparent string
	// ByTokens are the jtis of the agent tokens that handed the task on,
	// oldest first (a delegator known by its peer principal alone adds
	// none). Revoking one of those tokens voids the grant, and every
	// grant handed on from it: the delegation must not keep a leaked
	// token's authority alive.
	ByTokens []string
}

// Actor returns the current actor.
func (g *DelegationGrant) Actor() string {
	if len(g.Actors) == 0 {
		return ""
	}
	return g.Actors[len(g.Actors)-1]
}

// Delegators returns the agents before the current actor, root first: the
// chain the actor acts for.
func (g *DelegationGrant) Delegators() []string {
	out := make([]string, 0, len(g.Actors))
	out = append(out, g.Root)
	if len(g.Actors) > 1 {
		out = append(out, g.Actors[:len(g.Actors)-1]...)
	}
	return out
}

// actClaim is RFC 8693's actor claim: the current actor, with the previous
// one nested inside.
type actClaim struct {
	Sub string    `json:"sub"`
	Act *actClaim `json:"act,omitempty"`
}

type delegationClaims struct {
	Iss      string    `json:"iss"`
	Aud      string    `json:"aud"`
	Sub      string    `json:"sub"`
	Act      *actClaim `json:"act"`
	Scope    string    `json:"scope,omitempty"` // space-separated, as RFC 8693 has it
	MaxChain int       `json:"max_chain,omitempty"`
	Iat      int64     `json:"iat"`
	Exp      int64     `json:"exp"`
	Jti      string    `json:"jti"`
	// Traceparent: see DelegationGrant.Traceparent.
	Traceparent string `json:"traceparent,omitempty"`
	// ByJTI: see DelegationGrant.ByTokens.
	ByJTI []string `json:"by_jti,omitempty"`
}

// delegationRead is the payload VerifyDelegation reads: aud raw, so that a
// list or a missing aud is an audience error rather than a type error, and
// nbf, which Delegate never writes but a token may carry.
type delegationRead struct {
	delegationClaims
	Aud json.RawMessage `json:"aud"`
	Nbf *numericDate    `json:"nbf"`
}

// Delegate mints a delegation token for g. Root, Actors and ExpiresAt are
// required; IssuedAt and ID are set here. ExpiresAt must lie in the future
// and within the keyring's MaxTTL (callers cap it at the parent token's exp).
func (i *Issuer) Delegate(g DelegationGrant) (string, DelegationGrant, error) {
	ring := i.keys.Keyring()
	now := time.Unix(i.now().Unix(), 0).UTC()
	exp := time.Unix(g.ExpiresAt.Unix(), 0).UTC()
	if err := checkGrantShape(&g); err != nil {
		return "", DelegationGrant{}, err
	}
	if !exp.After(now) || exp.Sub(now) > ring.MaxTTL() {
		return "", DelegationGrant{}, fmt.Errorf("%w: expiry must be in the future and within %s", ErrInvalidGrant, ring.MaxTTL())
	}
	key := ring.current
	if key == nil {
		return "", DelegationGrant{}, fmt.Errorf("minting delegation token: %w", ErrNoSigningKey)
	}
	g.IssuedAt, g.ExpiresAt, g.ID = now, exp, newJTI()
	var act *actClaim
	for _, a := range g.Actors {
		act = &actClaim{Sub: a, Act: act}
	}
	payload, err := json.Marshal(delegationClaims{
		Iss: i.iss, Aud: i.aud + DelegationAudienceSuffix, Sub: g.Root, Act: act,
		Scope: strings.Join(g.Scope, " "), MaxChain: g.MaxChain,
		Iat: now.Unix(), Exp: exp.Unix(), Jti: g.ID, Traceparent: g.Traceparent, ByJTI: g.ByTokens,
	})
	if err != nil {
		return "", DelegationGrant{}, fmt.Errorf("minting delegation token: %w", err)
	}
	buf, err := key.signCompact(key.delegHeader, payload)
	if err != nil {
		return "", DelegationGrant{}, fmt.Errorf("minting delegation token: %w", err)
	}
	if len(buf) > MaxTokenSize {
		return "", DelegationGrant{}, fmt.Errorf("%w: the token would be %d bytes, over %d", ErrInvalidGrant, len(buf), MaxTokenSize)
	}
	g.Actors = append([]string(nil), g.Actors...)
	g.Scope = append([]string(nil), g.Scope...)
	if len(g.Scope) == 0 {
		g.Scope = nil
	}
	if g.ByTokens = append([]string(nil), g.ByTokens...); len(g.ByTokens) == 0 {
		g.ByTokens = nil
	}
	return string(buf), g, nil
}

// checkGrantShape checks the agents, scope and cap of a grant, minted or read.
func checkGrantShape(g *DelegationGrant) error {
	if !ValidAgentID(g.Root) {
		return fmt.Errorf("%w: root must be an agent id", ErrInvalidGrant)
	}
	if len(g.Actors) == 0 || len(g.Actors) > MaxActors {
		return fmt.Errorf("%w: 1 to %d actors required", ErrInvalidGrant, MaxActors)
	}
	for _, a := range g.Actors {
		if !ValidAgentID(a) {
			return fmt.Errorf("%w: every actor must be an agent id", ErrInvalidGrant)
		}
	}
	if len(g.Scope) > maxScope {
		return fmt.Errorf("%w: more than %d scope entries", ErrInvalidGrant, maxScope)
	}
	for _, s := range g.Scope {
		if s == "" || len(s) > maxScopeLen || strings.ContainsAny(s, " \t\r\n") {
			return fmt.Errorf("%w: scope entries are non-empty action patterns without whitespace, at most %d bytes", ErrInvalidGrant, maxScopeLen)
		}
	}
	if g.MaxChain < 0 || g.MaxChain > MaxActors {
		return fmt.Errorf("%w: max chain must be 0 to %d", ErrInvalidGrant, MaxActors)
	}
	// One token per delegating agent at most: the root and every actor
	// but the current one.
	if len(g.ByTokens) > len(g.Actors) {
		return fmt.Errorf("%w: more token ids than delegating agents", ErrInvalidGrant)
	}
	for _, j := range g.ByTokens {
		if !ValidJTI(j) {
			return fmt.Errorf("%w: every token id must be 1 to %d visible ASCII characters", ErrInvalidGrant, maxJTILen)
		}
	}
	if _, ok := edge.ParseTraceparent(g.Traceparent); g.Traceparent != "" && (!ok || len(g.Traceparent) != 55) {
		return fmt.Errorf("%w: traceparent must be a W3C traceparent of version 00", ErrInvalidGrant)
	}
	return nil
}

// VerifyDelegation checks a delegation token's signature, type, issuer,
// audience and times, and that no token that handed it on is revoked
// (ErrTokenRevoked), and returns what it grants. It does not look at the
// agents: the caller checks that the actor is the agent whose own token
// came with the request, and every agent's status, against the store.
func (v *Verifier) VerifyDelegation(token string) (DelegationGrant, error) {
	_, g, err := v.verifyDelegation(token, v.now())
	if err != nil {
		return DelegationGrant{}, err
	}
	if err := v.checkGrantRevoked(&g); err != nil {
		return DelegationGrant{}, err
	}
	return g, nil
}

// checkGrantRevoked asks the revocation list about every token that
// handed the grant on; the cache asks it on every hit too.
func (v *Verifier) checkGrantRevoked(g *DelegationGrant) error {
	if v.revoked == nil {
		return nil
	}
	for _, jti := range g.ByTokens {
		// The list is in memory (RevokedSet): no I/O to bound with a
		// caller's context.
		revoked, err := v.revoked.IsTokenRevoked(context.Background(), jti)
		if err != nil {
			return fmt.Errorf("%w: checking the delegation's token revocations: %w", ErrUnavailable, err)
		}
		if revoked {
			return fmt.Errorf("%w: the delegation was handed on with a revoked token", ErrTokenRevoked)
		}
	}
	return nil
}

// verifyDelegation also returns the kid that verified the token, for the cache.
func (v *Verifier) verifyDelegation(token string, now time.Time) (string, DelegationGrant, error) {
	jws, err := v.verifyJWS(token, now, typDelegation)
	if err != nil {
		return "", DelegationGrant{}, err
	}
	var c delegationRead
	if err := decodePayload(jws.payload, &c, delegClaimNames); err != nil {
		return "", DelegationGrant{}, err
	}
	var aud string
	if c.Aud != nil && json.Unmarshal(c.Aud, &aud) != nil {
		aud = "" // a list, a number...: Delegate writes one string
	}
	switch {
	case c.Iss != v.iss:
		return "", DelegationGrant{}, fmt.Errorf("%w: expected %q", ErrTokenIssuer, v.iss)
	case aud != v.aud+DelegationAudienceSuffix:
		return "", DelegationGrant{}, fmt.Errorf("%w: expected the string %q", ErrTokenAudience, v.aud+DelegationAudienceSuffix)
	case c.Jti == "" || len(c.Jti) > maxJTILen:
		return "", DelegationGrant{}, fmt.Errorf("%w: jti must be 1 to %d characters", ErrTokenJTI, maxJTILen)
	case c.Exp <= 0 || c.Iat <= 0 || c.Exp <= c.Iat || c.Exp > maxNumericDate:
		return "", DelegationGrant{}, fmt.Errorf("%w: iat and exp are required, exp after iat", ErrTokenClaims)
	}
	iat, exp := time.Unix(c.Iat, 0).UTC(), time.Unix(c.Exp, 0).UTC()
	if !now.Before(exp.Add(Leeway)) {
		return "", DelegationGrant{}, fmt.Errorf("%w: %s ago (leeway %s)", ErrTokenExpired, now.Sub(exp).Truncate(time.Second), Leeway)
	}
	if now.Add(Leeway).Before(iat) {
		return "", DelegationGrant{}, fmt.Errorf("%w: iat is %s ahead (leeway %s)", ErrTokenNotYetValid, iat.Sub(now).Truncate(time.Second), Leeway)
	}
	// Delegate writes no nbf, but a token that has one is not good before it.
	if c.Nbf != nil {
		if nbf := c.Nbf.time(); now.Add(Leeway).Before(nbf) {
			return "", DelegationGrant{}, fmt.Errorf("%w: nbf is %s ahead (leeway %s)", ErrTokenNotYetValid, nbf.Sub(now).Truncate(time.Second), Leeway)
		}
	}
	if exp.Sub(iat) > jws.ring.MaxTTL() {
		return "", DelegationGrant{}, fmt.Errorf("%w: lifetime %s exceeds the maximum %s", ErrTokenClaims, exp.Sub(iat), jws.ring.MaxTTL())
	}
	g := DelegationGrant{Root: c.Sub, MaxChain: c.MaxChain, IssuedAt: iat, ExpiresAt: exp, ID: c.Jti, Traceparent: c.Traceparent, ByTokens: c.ByJTI}
	for a := c.Act; a != nil; a = a.Act {
		if len(g.Actors) == MaxActors {
			return "", DelegationGrant{}, fmt.Errorf("%w: more than %d actors", ErrTokenClaims, MaxActors)
		}
		g.Actors = append(g.Actors, a.Sub)
	}
	// act is newest outermost; the grant lists actors oldest first.
	for i, j := 0, len(g.Actors)-1; i < j; i, j = i+1, j-1 {
		g.Actors[i], g.Actors[j] = g.Actors[j], g.Actors[i]
	}
	if c.Scope != "" {
		g.Scope = strings.Split(c.Scope, " ")
	}
	if err := checkGrantShape(&g); err != nil {
		return "", DelegationGrant{}, fmt.Errorf("%w: %w", ErrTokenClaims, err)
	}
	return jws.kid, g, nil
}
