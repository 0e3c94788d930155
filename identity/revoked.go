package identity

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshguard/meshguard/internal/edge"
)

// MaxRevokedTokens bounds the revocations held at once (of tokens not yet
// expired): in the store, in every replica's RevokedSet and in the wasm
// filter's configuration.
const MaxRevokedTokens = 100_000

// MaxRevocationReasonLen bounds a revocation's free-text reason.
const MaxRevocationReasonLen = 256

// Revocation errors.
var (
	// ErrInvalidRevocation: a revocation's jti, agent id, times or reason
	// are not acceptable; nothing was stored.
	ErrInvalidRevocation = errors.New("invalid token revocation")
	// ErrTooManyRevocations: MaxRevokedTokens revocations of unexpired
	// tokens are held already.
	ErrTooManyRevocations = errors.New("too many revoked tokens")
	// ErrRevocationsNotLoaded: a RevokedSet was asked before it was
	// loaded. The verifier reports it as ErrUnavailable (fail closed).
	ErrRevocationsNotLoaded = errors.New("the revoked-token list is not loaded")
)

// RevokedToken is one revoked agent token, by its jti. It holds no token
// material.
type RevokedToken struct {
	JTI     string `json:"jti"`
	AgentID string `json:"agentId"`
	// ExpiresAt is the token's exp (or, when it was revoked by jti alone,
	// the latest exp a token issued then could have): past it, plus
	// Leeway, the token is refused anyway and the revocation may go.
	ExpiresAt time.Time `json:"expiresAt"`
	RevokedAt time.Time `json:"revokedAt"`
	Reason    string    `json:"reason,omitempty"`
}

// ValidJTI reports whether s can be a token id: 1 to 256 visible ASCII
// characters. Tokens MeshGuard issues have 22 (base64url); anything else
// could not be named to revoke it, nor logged safely.
func ValidJTI(s string) bool {
	if s == "" || len(s) > maxJTILen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// Validate checks a revocation before it is stored.
func (r *RevokedToken) Validate() error {
	switch {
	case !ValidJTI(r.JTI):
		return fmt.Errorf("%w: jti must be 1 to %d visible ASCII characters", ErrInvalidRevocation, maxJTILen)
	case !ValidAgentID(r.AgentID):
		return fmt.Errorf("%w: agentId must be an agent id (%s...)", ErrInvalidRevocation, IDPrefix)
	case r.ExpiresAt.IsZero() || r.RevokedAt.IsZero():
		return fmt.Errorf("%w: expiresAt and revokedAt are required", ErrInvalidRevocation)
	}
	switch err := edge.CheckText(r.Reason, MaxRevocationReasonLen); {
	case errors.Is(err, edge.ErrTextTooLong):
		return fmt.Errorf("%w: reason longer than %d bytes", ErrInvalidRevocation, MaxRevocationReasonLen)
	case err != nil:
		return fmt.Errorf("%w: reason %w", ErrInvalidRevocation, err)
	}
	return nil
}

// Live reports whether the revocation still matters at now: its token
// could still be accepted (exp plus Leeway has not passed).
func (r *RevokedToken) Live(now time.Time) bool { return now.Before(r.ExpiresAt.Add(Leeway)) }

// RevokedSet is the revoked jtis in memory: the verifier asks it about
// every token, cached or not, without a store round trip. It is empty and
// refuses to answer (ErrRevocationsNotLoaded, so every token check fails
// closed) until the first Load. Revocations only accumulate: Load and Add
// merge, keeping a jti's latest exp, and an entry leaves only once its
// token has expired, so a reload racing an Add cannot lose or shorten it. Safe for concurrent use; reads take no
// lock.
type RevokedSet struct {
	mu  sync.Mutex                        // serialises writers
	m   atomic.Pointer[map[string]revoke] // nil until loaded; never mutated once stored
	now func() time.Time
}

// revoke is what the set keeps of a RevokedToken.
type revoke struct {
	agentID string
	exp     time.Time
}

// NewRevokedSet returns an unloaded set using clock now (time.Now if nil).
func NewRevokedSet(now func() time.Time) *RevokedSet {
	if now == nil {
		now = time.Now
	}
	return &RevokedSet{now: now}
}

// IsTokenRevoked implements RevokedTokens.
func (s *RevokedSet) IsTokenRevoked(_ context.Context, jti string) (bool, error) {
	m := s.m.Load()
	if m == nil {
		return false, ErrRevocationsNotLoaded
	}
	if len(*m) == 0 {
		return false, nil
	}
	_, ok := (*m)[jti]
	return ok, nil
}

// Covers reports whether the set holds r's jti until r's exp at least:
// whether merging r would change nothing. ErrRevocationsNotLoaded before
// the first Load.
func (s *RevokedSet) Covers(r RevokedToken) (bool, error) {
	m := s.m.Load()
	if m == nil {
		return false, ErrRevocationsNotLoaded
	}
	cur, ok := (*m)[r.JTI]
	return ok && !r.ExpiresAt.After(cur.exp), nil
}

// Load merges list into the set and marks it loaded. Past MaxRevokedTokens
// live entries it refuses the whole list, leaving the set as it was.
func (s *RevokedSet) Load(list []RevokedToken) error {
	return s.merge(list)
}

// Add merges one revocation (after it was stored).
func (s *RevokedSet) Add(r RevokedToken) error { return s.merge([]RevokedToken{r}) }

func (s *RevokedSet) merge(list []RevokedToken) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	next := make(map[string]revoke)
	if cur := s.m.Load(); cur != nil {
		for jti, r := range *cur {
			if now.Before(r.exp.Add(Leeway)) { // expired entries go
				next[jti] = r
			}
		}
	}
	for i := range list {
		// A jti revoked again (another token with it, a later exp) keeps
		// the later exp, whichever order the two arrive in: a reload
		// that read the store earlier must not shorten it.
		if cur, ok := next[list[i].JTI]; list[i].Live(now) && (!ok || list[i].ExpiresAt.After(cur.exp)) {
			next[list[i].JTI] = revoke{agentID: list[i].AgentID, exp: list[i].ExpiresAt}
		}
	}
	if len(next) > MaxRevokedTokens {
		return fmt.Errorf("%w: %d live, the limit is %d", ErrTooManyRevocations, len(next), MaxRevokedTokens)
	}
	s.m.Store(&next)
	return nil
}

// Loaded reports whether Load has succeeded once.
func (s *RevokedSet) Loaded() bool { return s.m.Load() != nil }

// Live returns the revocations whose tokens have not expired, by jti:
// what the wasm filter's configuration carries. No RevokedAt or Reason.
func (s *RevokedSet) Live() []RevokedToken {
	m := s.m.Load()
	if m == nil {
		return nil
	}
	now := s.now()
	out := make([]RevokedToken, 0, len(*m))
	for _, jti := range slices.Sorted(maps.Keys(*m)) {
		r := (*m)[jti]
		if now.Before(r.exp.Add(Leeway)) {
			out = append(out, RevokedToken{JTI: jti, AgentID: r.agentID, ExpiresAt: r.exp})
		}
	}
	return out
}
