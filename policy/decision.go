package policy

import (
	"time"

	"github.com/meshguard/meshguard/api"
	"github.com/meshguard/meshguard/trust"
)

// Subject is an agent as the policy engine sees it: enough to decide
// coverage, conditions and the delegation checks. Active must be set for
// every agent that may act; the zero value is inactive, so a forgotten field
// denies rather than allows.
type Subject struct {
	ID     string     `json:"id"`
	Name   string     `json:"name"`
	Tier   trust.Tier `json:"trustTier"` // the effective tier
	Tags   []string   `json:"tags,omitempty"`
	Active bool       `json:"active"`
}

// Label is the agent's name, or its id when it has none.
func (s *Subject) Label() string {
	if s.Name != "" {
		return s.Name
	}
	return s.ID
}

// Input is one request to decide.
type Input struct {
	Agent    Subject
	Action   string
	Resource string
	Context  map[string]any // decoded JSON object; nil = empty
	// Chain lists the agents that delegated this task, root first, ending
	// with the one that handed it to Agent. Empty when Agent acts on its own.
	Chain []Subject
	// Scope is the delegation token's scope: action patterns the chain may
	// still perform. Nil means no token scope applies.
	Scope []string
	// Time is when the request happened, for time conditions; zero = now.
	Time time.Time
	// ArgumentsUnknown: the request is an MCP call decided from its
	// headers alone (docs/mcp.md), so its arguments are unknown, not
	// absent. A condition on arguments.* then fails in an allow rule and
	// holds in a deny rule: the unknown is never read as an allow.
	ArgumentsUnknown bool
	// ArgumentsAny: the question is whether some arguments could be
	// allowed (which tools a list shows): a condition on arguments.*
	// holds in an allow rule and fails in a deny rule. Never for a call.
	ArgumentsAny bool
	// Explain asks for the explain trace in Decision.Explain (slower).
	Explain bool
}

// root is the first agent of the full chain (delegators then the actor).
func (in *Input) root() *Subject {
	if len(in.Chain) > 0 {
		return &in.Chain[0]
	}
	return &in.Agent
}

// Reason codes: stable identifiers that audit records, metrics and clients
// branch on. Each decision pairs one with a sentence.
const (
	ReasonRuleAllow      = "rule_allow"       // a rule allowed it
	ReasonDefaultAllow   = "default_allow"    // no rule matched; every covering default is allow
	ReasonRuleDeny       = "rule_deny"        // a rule denied it
	ReasonNoMatchingRule = "no_matching_rule" // no rule matched; a covering default is deny
	ReasonNoPolicy       = "no_policy"        // no policy covers the agent
	ReasonAgentRevoked   = "agent_revoked"    // the acting agent is revoked
	// ReasonApprovalRequired: an approve rule matched and no deny did; the
	// request is allowed only with a person's approval (the engine's part).
	ReasonApprovalRequired = "approval_required"

	ReasonDelegationActorMismatch = "delegation_actor_mismatch"
	ReasonDelegationRevoked       = "delegation_revoked"
	ReasonDelegationCycle         = "delegation_cycle"
	ReasonDelegationUntrusted     = "delegation_untrusted"
	ReasonDelegationDepth         = "delegation_depth"
	ReasonDelegationMemberDenied  = "delegation_member_denied"
	ReasonDelegationNotPermitted  = "delegation_not_permitted"
	ReasonDelegationCeiling       = "delegation_ceiling"
	ReasonDelegationScope         = "delegation_scope"
)

// Decision is the policy engine's answer for one Input.
type Decision struct {
	Effect   Effect     `json:"decision"`
	Reason   string     `json:"reason"`  // a Reason* code
	Message  string     `json:"message"` // one sentence for people
	Policy   string     `json:"policy,omitempty"`
	Rule     string     `json:"rule,omitempty"`
	Tier     trust.Tier `json:"trustTier"`
	Revision string     `json:"policyRevision"`
	// Limits are the rate limits an allowed request counts against: the
	// rateLimits of every covering policy and the rateLimit of each deciding
	// rule. The engine enforces them; the policy package keeps no counters.
	Limits  []Limit      `json:"limits,omitempty"`
	Explain *Explanation `json:"explain,omitempty"`
	// ApproveRule is the deciding approve rule when Effect is Approve: its
	// Approvers and TTL (shared with the set: not to be modified; a
	// pointer keeps the hot path's Decision small).
	ApproveRule *Rule `json:"-"`
}

// Allowed reports whether the effect is allow (approve is not: it needs a
// person's approval first).
func (d *Decision) Allowed() bool { return d.Effect == Allow }

// Limit is one rate limit that applies to a request, per acting agent
// (Key is the policy name, or policy/rule for a rule's limit).
type Limit = api.RateLimit
