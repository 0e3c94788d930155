package enginetest

import (
	"testing"

	"github.com/meshguard/meshguard/identity"
	"github.com/meshguard/meshguard/trust"
)

// MeshPolicies is the delegation mesh the engine and adapter tests share:
// an orchestrator that may delegate two hops within a read / email /
// research ceiling, a researcher that may delegate one hop (rate limited to
// 5 a minute), and an emailer that sends internal mail only and may not
// delegate.
const MeshPolicies = `
name: orchestrators
appliesTo: {tags: [orchestrator]}
rules:
  - {name: work, effect: allow, actions: ["read:*", "write:*"]}
delegation: {maxDepth: 2, permissionCeiling: ["read:*", "write:email", "write:research/*"]}
---
name: researchers
appliesTo: {tags: [researcher]}
rules:
  - {name: reads, effect: allow, actions: ["read:*", "write:research/*", "write:notes/*", "write:email"]}
delegation: {maxDepth: 1}
rateLimits: {requestsPerMinute: 5}
---
name: emailers
appliesTo: {tags: [emailer]}
rules:
  - name: no-external
    effect: deny
    actions: ["write:email"]
    conditions: {context: {query.to: {not_matches: "*@example.com"}}}
    reason: External email needs a privileged agent
  - {name: send, effect: allow, actions: ["write:email", "read:*"]}
`

// Mesh is a Fixture over MeshPolicies with its three agents, each reached
// under <name>.mesh.
type Mesh struct {
	F                  *Fixture
	Orch, Res, Mail    identity.Agent
	OrchT, ResT, MailT string // their tokens
}

// NewMesh builds a Mesh.
func NewMesh(t testing.TB, opts Options) *Mesh {
	t.Helper()
	f := New(t, MeshPolicies, opts)
	m := &Mesh{F: f}
	m.Orch, m.OrchT = f.Agent(t, "orchestrator", trust.Trusted, []string{"orchestrator"}, "orchestrator.mesh")
	m.Res, m.ResT = f.Agent(t, "researcher", trust.Verified, []string{"researcher"}, "researcher.mesh")
	m.Mail, m.MailT = f.Agent(t, "emailer", trust.Verified, []string{"emailer"}, "emailer.mesh")
	return m
}
