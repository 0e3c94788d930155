package policy

import (
	"time"

	"github.com/meshguard/meshguard/api"
	"github.com/meshguard/meshguard/trust"
)

// Effect is what a rule or a policy's default says: allow or deny, or for a
// rule approve (the API's type, so its JSON is defined once).
type Effect = api.Effect

// The effects.
const (
	Allow   = api.Allow
	Deny    = api.Deny
	Approve = api.Approve
)

// Policy is one decoded policy document. Field names follow the YAML keys.
type Policy struct {
	Name          string      `json:"name"`
	Version       string      `json:"version,omitempty"`
	Description   string      `json:"description,omitempty"`
	AppliesTo     AppliesTo   `json:"appliesTo"`
	Rules         []Rule      `json:"rules"`
	DefaultEffect Effect      `json:"defaultEffect"`
	Delegation    *Delegation `json:"delegation,omitempty"`
	RateLimits    *RateLimits `json:"rateLimits,omitempty"`
	// Mode is "" (enforce) or ModeShadow: a shadow policy is evaluated
	// but never changes a decision (docs/governance.md). Enforce is kept
	// as "", so a policy's revision does not change by spelling it out.
	Mode   string    `json:"mode,omitempty"`
	Source SourceRef `json:"-"`
}

// Policy modes (the policy key mode:).
const (
	ModeEnforce = "enforce"
	ModeShadow  = "shadow"
)

// Shadow reports whether p is a shadow policy.
func (p *Policy) Shadow() bool { return p.Mode == ModeShadow }

// SourceRef says where a policy was read from, for error messages and explain.
type SourceRef struct {
	File string
	Line int
}

// AppliesTo selects the agents a policy covers: any matching selector covers
// the agent; no selectors cover every agent.
type AppliesTo struct {
	TrustTiers []trust.Tier `json:"trustTiers,omitempty"`
	Tags       []string     `json:"tags,omitempty"`
	AgentIDs   []string     `json:"agentIds,omitempty"` // ids or names
}

// Empty reports whether no selector is set, i.e. the policy covers every agent.
func (a AppliesTo) Empty() bool {
	return len(a.TrustTiers) == 0 && len(a.Tags) == 0 && len(a.AgentIDs) == 0
}

// Rule is one entry of a policy's ordered rule list.
type Rule struct {
	Name       string      `json:"name"`
	Effect     Effect      `json:"effect"`
	Actions    []string    `json:"actions"`
	Conditions *Conditions `json:"conditions,omitempty"`
	Reason     string      `json:"reason,omitempty"`
	// Approvers and TTL only with effect approve: who may approve (tags of
	// people or a named group; informational for notifications), and how
	// long a given approval may be used (0: once).
	Approvers []string      `json:"approvers,omitempty"`
	TTL       time.Duration `json:"ttl,omitempty"`
	Line      int           `json:"-"`
}

// Conditions must all hold for a rule to match.
type Conditions struct {
	Resource *ResourceCondition `json:"resource,omitempty"`
	// Context's conditions are held by pointer: a map's slots are its
	// value's size, and a map of one key has eight (≈ 0.9 KB a rule).
	Context   map[string]*ContextCondition `json:"context,omitempty"`
	Time      *TimeCondition               `json:"time,omitempty"`
	Delegated *bool                        `json:"delegated,omitempty"`
	Chain     *ChainCondition              `json:"chain,omitempty"`
	RateLimit *RuleRateLimit               `json:"rateLimit,omitempty"`
}

// ResourceCondition tests the request's resource. Every set field must hold.
type ResourceCondition struct {
	Matches    []string `json:"matches,omitempty"`
	StartsWith string   `json:"startsWith,omitempty"`
	Contains   string   `json:"contains,omitempty"`
}

// ContextCondition tests one key of the request context. Equals is set for a
// literal (equality); otherwise the operators that are set must all hold.
type ContextCondition struct {
	Equals     *Value   `json:"equals,omitempty"`
	In         []Value  `json:"in,omitempty"`
	Matches    *string  `json:"matches,omitempty"`
	NotMatches *string  `json:"not_matches,omitempty"`
	Lt         *float64 `json:"lt,omitempty"`
	Lte        *float64 `json:"lte,omitempty"`
	Gt         *float64 `json:"gt,omitempty"`
	Gte        *float64 `json:"gte,omitempty"`
	Exists     *bool    `json:"exists,omitempty"`
}

// Value is a scalar from policy YAML or request context: a string, a number
// (float64), a bool, or null. Numbers compare by value, so YAML 5 equals JSON 5.0.
type Value struct {
	Kind ValueKind
	Str  string
	Num  float64
	Bool bool
}

// ValueKind says which field of a Value is meaningful.
type ValueKind uint8

// Value kinds.
const (
	KindNull ValueKind = iota
	KindString
	KindNumber
	KindBool
	KindOther // arrays and objects in request context; equal to no literal
)

// TimeCondition restricts a rule to a daily window and/or days of the week,
// read in a timezone.
type TimeCondition struct {
	Between  string   `json:"between,omitempty"`
	Timezone string   `json:"timezone,omitempty"`
	Days     []string `json:"days,omitempty"`
}

// ChainCondition tests the delegation chain: the root matches one of Root,
// and some agent before the actor matches one of Includes. Globs match ids or names.
type ChainCondition struct {
	Root     []string `json:"root,omitempty"`
	Includes []string `json:"includes,omitempty"`
}

// RuleRateLimit is a per-agent limit attached to a rule: when the rule
// decides, the request counts against it (enforced by the engine).
type RuleRateLimit struct {
	RequestsPerMinute int `json:"requestsPerMinute"`
}

// Delegation is a policy's delegation block (docs/policies.md#delegation).
type Delegation struct {
	MaxDepth          int      `json:"maxDepth"`
	PermissionCeiling []string `json:"permissionCeiling,omitempty"`
}

// RateLimits are a policy's per-covered-agent limits (docs/policies.md); zero = none.
type RateLimits struct {
	RequestsPerMinute int `json:"requestsPerMinute,omitempty"`
	RequestsPerHour   int `json:"requestsPerHour,omitempty"`
}
