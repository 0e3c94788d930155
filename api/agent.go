package api

import (
	"time"

	"github.com/meshguard/meshguard/trust"
)

// Agent statuses. A revoked agent's tokens are all rejected at once.
const (
	AgentActive  = "active"
	AgentRevoked = "revoked"
)

// Agent is one registered agent as the API shows it (docs/identity.md).
type Agent struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	TrustTier trust.Tier `json:"trustTier"`
	Tags      []string   `json:"tags"`
	Hosts     []string   `json:"hosts"`
	// SPIFFEIDs are the mesh identities (spiffe://…) that are this agent.
	SPIFFEIDs []string          `json:"spiffeIds"`
	Metadata  map[string]string `json:"metadata"`
	Status    string            `json:"status"` // AgentActive or AgentRevoked
	CreatedAt time.Time         `json:"createdAt"`
	UpdatedAt time.Time         `json:"updatedAt"`
}

// Revocation is one revoked token as stored.
type Revocation struct {
	JTI     string `json:"jti"`
	AgentID string `json:"agentId"`
	// ExpiresAt is the token's exp (or, when it was revoked by jti alone,
	// the latest exp a token issued then could have).
	ExpiresAt time.Time `json:"expiresAt"`
	RevokedAt time.Time `json:"revokedAt"`
	Reason    string    `json:"reason,omitempty"`
}
