// Package identity owns who an agent is: agents and their trust tiers, the
// signing keys MeshGuard holds, and the JWTs it issues to agents and verifies
// on every request (with a cache so the hot path does no cryptography for a
// token it has already checked). It serves the public keys as JWKS with an
// OIDC discovery document so Envoy's jwt_authn, Istio's RequestAuthentication
// and the wasm filter can verify tokens without any secret.
//
// identity knows nothing of HTTP or Envoy, and it does not know how agents and
// keys are stored: it defines the small interfaces it needs (AgentSource,
// KeyStore) and the store package implements them.
package identity

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/meshguard/meshguard/api"
	"github.com/meshguard/meshguard/trust"
)

// Status is an agent's lifecycle state.
type Status string

// Agent statuses. A revoked agent's tokens are all rejected at once.
const (
	StatusActive  Status = api.AgentActive
	StatusRevoked Status = api.AgentRevoked
)

// Agent is one registered agent (docs/identity.md).
type Agent struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	TrustTier trust.Tier `json:"trustTier"`
	Tags      []string   `json:"tags"`
	Hosts     []string   `json:"hosts"`
	// SPIFFEIDs are the mesh identities (the SPIFFE IDs of the workload
	// certificates a mesh such as Istio issues) that are this agent: a
	// request whose verified peer principal is one of them needs no token.
	// An ID belongs to at most one agent.
	SPIFFEIDs []string          `json:"spiffeIds"`
	Metadata  map[string]string `json:"metadata"`
	Status    Status            `json:"status"`
	CreatedAt time.Time         `json:"createdAt"`
	UpdatedAt time.Time         `json:"updatedAt"`
}

// Active reports whether the agent may act.
func (a Agent) Active() bool { return a.Status == StatusActive }

// Sentinel errors callers branch on.
var (
	// ErrNotFound: no agent or key with that id or name.
	ErrNotFound = errors.New("not found")
	// ErrConflict: an agent with that name (or a key with that kid) exists.
	ErrConflict = errors.New("already exists")
	// ErrInvalidAgent: an agent's fields break the rules of docs/identity.md.
	ErrInvalidAgent = errors.New("invalid agent")
)

// Limits on agent fields; every limit is bounded (docs/identity.md).
const (
	MaxNameLen      = 128
	MaxTags         = 64
	MaxHosts        = 64
	MaxMetadataKeys = 64
	maxValueLen     = 1024
)

var (
	namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	tagPattern  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:/-]*$`)
	hostPattern = regexp.MustCompile(`^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$`)
)

// Validate checks an agent's user-supplied fields. Names may not start with
// "agent_" so that a name can never be mistaken for an id where either is
// accepted (policy agentIds, chain globs, the CLI).
func (a Agent) Validate() error {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrInvalidAgent, field, fmt.Sprintf(format, args...))
	}
	if err := checkName(a.Name); err != nil {
		return bad("name", "%v", err)
	}
	if !a.TrustTier.Valid() {
		return bad("trustTier", "unknown tier %d", a.TrustTier)
	}
	if a.Status != StatusActive && a.Status != StatusRevoked {
		return bad("status", "%q: expected active or revoked", a.Status)
	}
	if len(a.Tags) > MaxTags {
		return bad("tags", "more than %d", MaxTags)
	}
	for _, t := range a.Tags {
		if len(t) > maxValueLen || !tagPattern.MatchString(t) {
			return bad("tags", "%q: expected letters, digits and . _ : / -", t)
		}
	}
	if len(a.Hosts) > MaxHosts {
		return bad("hosts", "more than %d", MaxHosts)
	}
	for _, h := range a.Hosts {
		if !ValidHost(h) {
			return bad("hosts", "%q: expected a lower-case host name without a port or trailing dot (a host belongs to one agent on every port)", h)
		}
	}
	if len(a.Metadata) > MaxMetadataKeys {
		return bad("metadata", "more than %d keys", MaxMetadataKeys)
	}
	if len(a.SPIFFEIDs) > MaxSPIFFEIDs {
		return bad("spiffeIds", "more than %d", MaxSPIFFEIDs)
	}
	seen := make(map[string]bool, len(a.SPIFFEIDs))
	for _, id := range a.SPIFFEIDs {
		if err := checkSPIFFEID(id); err != nil {
			return bad("spiffeIds", "%v", err)
		}
		if seen[id] {
			return bad("spiffeIds", "%q listed twice", id)
		}
		seen[id] = true
	}
	for k, v := range a.Metadata {
		if k == "" || len(k) > maxValueLen || len(v) > maxValueLen {
			return bad("metadata", "key %q: keys must be non-empty and keys and values at most %d bytes", k, maxValueLen)
		}
	}
	return nil
}

// ValidName reports whether name may name an agent (the service
// catalogue checks the agent it names with it).
func ValidName(name string) bool { return checkName(name) == nil }

// checkName says what is wrong with an agent name; Validate wraps it in
// ErrInvalidAgent.
func checkName(name string) error {
	switch {
	case name == "":
		return errors.New("must not be empty")
	case len(name) > MaxNameLen:
		return fmt.Errorf("longer than %d characters", MaxNameLen)
	case !namePattern.MatchString(name):
		return fmt.Errorf("%q: expected letters, digits, '.', '_' or '-', starting with a letter or digit", name)
	case strings.HasPrefix(name, IDPrefix):
		return fmt.Errorf("%q: must not start with %q (reserved for ids)", name, IDPrefix)
	}
	return nil
}

// ValidHost reports whether h is a host name as agents and the service
// catalogue keep them: lower case, without a port or trailing dot.
func ValidHost(h string) bool { return len(h) <= 253 && hostPattern.MatchString(h) }

// IDPrefix starts every agent id.
const IDPrefix = "agent_"

// maxIDSuffixLen bounds what follows IDPrefix in an id. NewAgentID makes 20
// characters; ids imported from elsewhere may differ, within reason.
const maxIDSuffixLen = 64

// ValidAgentID reports whether id has the shape of an agent id: IDPrefix
// followed by 1 to 64 letters, digits, '_' or '-'. The verifier requires it
// of a token's sub, so a name or garbage never reaches AgentSource.
func ValidAgentID(id string) bool {
	if len(id) <= len(IDPrefix) || len(id) > len(IDPrefix)+maxIDSuffixLen || id[:len(IDPrefix)] != IDPrefix {
		return false
	}
	for i := len(IDPrefix); i < len(id); i++ {
		c := id[i]
		alnum := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
		if !alnum && c != '_' && c != '-' {
			return false
		}
	}
	return true
}

// NewAgentID returns "agent_" followed by 20 random base32 characters
// (100 bits), lower-case so ids are safe in host names and URLs.
func NewAgentID() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz234567"
	var b [20]byte
	// crypto/rand.Read never returns an error on supported platforms (Go 1.24+).
	_, _ = rand.Read(b[:])
	out := make([]byte, len(IDPrefix)+len(b))
	copy(out, IDPrefix)
	for i, c := range b {
		out[len(IDPrefix)+i] = alphabet[c&31]
	}
	return string(out)
}

// NormalizeHost turns a request's Host or :authority into the form agent
// hosts are stored in: lower case, without a port, without the trailing dot
// of a fully qualified name (and without the brackets of an IPv6 literal).
// Every lookup by host goes through it, so "Emailer.Mesh.:8080" and
// "emailer.mesh" are the same agent.
func NormalizeHost(h string) string {
	h = strings.ToLower(strings.TrimSpace(h))
	if strings.HasPrefix(h, "[") {
		if end := strings.IndexByte(h, ']'); end > 0 {
			return h[1:end]
		}
		return h
	}
	if i := strings.LastIndexByte(h, ':'); i >= 0 && strings.IndexByte(h, ':') == i {
		h = h[:i] // one colon: host:port (a bare IPv6 literal has several)
	}
	return strings.TrimSuffix(h, ".")
}

// AgentSource looks agents up. The store implements it; the verifier uses it
// to check an agent's current status and tier.
type AgentSource interface {
	GetAgent(ctx context.Context, id string) (Agent, error)
}
