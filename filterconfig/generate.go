package filterconfig

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/meshguard/meshguard/catalog"
	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/identity"
	"github.com/meshguard/meshguard/policy"
)

// Inputs are what MeshGuard generates a configuration from.
type Inputs struct {
	Mode             engine.Mode
	Answer           engine.Answer
	Issuer, Audience string
	// JWKS is the public keys that verify now (identity.Keys.JWKS).
	JWKS  []byte
	HS256 bool
	// Agents are every agent, active or revoked.
	Agents []identity.Agent
	// RevokedTokens are the tokens revoked by jti whose exp has not passed
	// (identity.RevokedSet.Live).
	RevokedTokens []identity.RevokedToken
	Policies      []*policy.Policy
	Routes        []engine.Route
	Catalogue     *catalog.Catalogue
	MeshGuard     Upstream
	Audit         Audit
}

// Generate writes the configuration for in, and returns its revision. The
// same inputs give the same bytes (agents sorted by id), and the revision
// is a digest of them, so a control plane can tell a real change from a
// regeneration.
func Generate(in Inputs) ([]byte, string, error) {
	c := Config{
		Version: Version, Mode: in.Mode, Issuer: in.Issuer, Audience: in.Audience,
		JWKS: json.RawMessage(in.JWKS), HS256: in.HS256, Agents: []Agent{}, Policies: []json.RawMessage{},
		Routes: in.Routes, MeshGuard: in.MeshGuard, Audit: in.Audit,
	}
	if in.Answer != 0 {
		c.Answer = in.Answer.String()
	}
	agents := slices.Clone(in.Agents)
	slices.SortFunc(agents, func(a, b identity.Agent) int { return strings.Compare(a.ID, b.ID) })
	for _, a := range agents {
		fa := Agent{ID: a.ID, Name: a.Name, Tier: a.TrustTier.String(), Tags: a.Tags, Hosts: a.Hosts}
		if a.Active() {
			c.Agents = append(c.Agents, fa)
		} else {
			c.RevokedAgents = append(c.RevokedAgents, fa)
		}
	}
	revoked := slices.Clone(in.RevokedTokens)
	slices.SortFunc(revoked, func(a, b identity.RevokedToken) int { return strings.Compare(a.JTI, b.JTI) })
	for _, r := range revoked {
		// Rounded up: the filter must not forget a revocation before
		// MeshGuard does.
		c.RevokedTokens = append(c.RevokedTokens, RevokedToken{JTI: r.JTI, Exp: r.ExpiresAt.Add(time.Second - 1).Unix()})
	}
	for _, p := range in.Policies {
		js, err := p.JSON()
		if err != nil {
			return nil, "", fmt.Errorf("filter configuration: policy %s: %w", p.Name, err)
		}
		c.Policies = append(c.Policies, js)
	}
	if in.Catalogue != nil {
		for _, s := range in.Catalogue.Services {
			fs := Service{Name: s.Name, Hosts: s.Hosts, Routes: s.Routes, Protocol: s.Protocol}
			if s.MinTier > 0 {
				fs.MinTier = s.MinTier.String()
			}
			c.Services = append(c.Services, fs)
		}
	}
	body, err := json.Marshal(c)
	if err != nil {
		return nil, "", fmt.Errorf("filter configuration: %w", err)
	}
	sum := sha256.Sum256(body)
	c.Revision = hex.EncodeToString(sum[:8])
	out, err := json.Marshal(c)
	return out, c.Revision, err
}
