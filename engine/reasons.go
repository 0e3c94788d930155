package engine

import "github.com/meshguard/meshguard/identity"

// Reason codes the engine adds to those of package policy.
const (
	// ReasonAllowed... come from policy (rule_allow, default_allow).

	// ReasonUnauthorized: no credential, or one that does not verify (401).
	ReasonUnauthorized = "unauthorized"
	// ReasonAgentRevoked: the token's agent is revoked (401).
	ReasonAgentRevoked = "agent_revoked"
	// ReasonTokenRevoked: the token itself was revoked (by its jti), its
	// agent's other tokens still work (401).
	ReasonTokenRevoked = "token_revoked"
	// ReasonIdentityMismatch: the token and the peer principal name
	// different agents: the principal is bound to another agent than the
	// token's, or the token's agent is bound to SPIFFE IDs and the
	// principal is none of them (403).
	ReasonIdentityMismatch = "identity_mismatch"
	// ReasonBadRequest: malformed input the caller controls, such as an
	// oversized header or a path with a dot segment (400).
	ReasonBadRequest = "bad_request"
	// ReasonActionUnresolved: no route maps the request and its method
	// maps to no verb (403).
	ReasonActionUnresolved = "action_unresolved"
	// ReasonTierBelowMinimum: the agent's effective tier is below the
	// minimum of the service it calls (the catalogue's minTier) (403).
	ReasonTierBelowMinimum = "tier_below_minimum"
	// ReasonRateLimited: a rate limit is exhausted (429).
	ReasonRateLimited = "rate_limited"
	// ReasonMCPHeaderMismatch: an MCP request's Mcp-Method or Mcp-Name
	// header disagrees with its body (400, docs/mcp.md).
	ReasonMCPHeaderMismatch = "mcp_header_mismatch"
)

// Input bounds, documented in docs/enforcement.md.
const (
	MaxActionLen   = 1024
	MaxResourceLen = 4096
	MaxContextLen  = 8 << 10 // bytes of a decision's context, as JSON
	MaxContextKeys = 64
	MaxPathLen     = 8 << 10
	MaxHostLen     = 253 + 6
	// MaxPrincipalLen bounds a peer principal: a SPIFFE ID's own limit.
	MaxPrincipalLen = identity.MaxSPIFFEIDLen
)
