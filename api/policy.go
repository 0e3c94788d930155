package api

import "github.com/meshguard/meshguard/trust"

// Effect is a policy decision: Allow, Deny, or Approve (allowed only once a
// person approves this very request; docs/governance.md).
type Effect string

// The effects.
const (
	Allow   Effect = "allow"
	Deny    Effect = "deny"
	Approve Effect = "approve"
)

// PolicyDecision is a policy decision as the API shows it (POST
// /admin/policies/test, docs/policies.md).
type PolicyDecision struct {
	Decision       Effect     `json:"decision"`
	Reason         string     `json:"reason"`  // a reason code
	Message        string     `json:"message"` // one sentence for people
	Policy         string     `json:"policy,omitempty"`
	Rule           string     `json:"rule,omitempty"`
	TrustTier      trust.Tier `json:"trustTier"`
	PolicyRevision string     `json:"policyRevision"`
	// Limits are the rate limits an allowed request counts against.
	Limits  []RateLimit  `json:"limits,omitempty"`
	Explain *Explanation `json:"explain,omitempty"`
}

// RateLimit is one rate limit that applies to a request, per acting agent.
type RateLimit struct {
	Key       string `json:"key"` // policy name, or policy/rule for a rule's limit
	PerMinute int    `json:"requestsPerMinute,omitempty"`
	PerHour   int    `json:"requestsPerHour,omitempty"`
}

// Explanation says how a decision was reached (verbose): each policy,
// whether it covers the agent and why, and what each of its rules did;
// then each delegation check with its outcome.
type Explanation struct {
	Policies   []PolicyExplanation `json:"policies"`
	Delegation []Step              `json:"delegation,omitempty"`
}

// PolicyExplanation is one policy's part in a decision.
type PolicyExplanation struct {
	Name     string            `json:"name"`
	Covered  bool              `json:"covered"`
	Coverage string            `json:"coverage"` // why it does or does not cover the agent
	Rules    []RuleExplanation `json:"rules,omitempty"`
	Effect   Effect            `json:"effect,omitempty"`  // this policy's effect, when covered
	Default  bool              `json:"default,omitempty"` // the effect is the policy's defaultEffect
}

// RuleExplanation says what happened to one rule.
type RuleExplanation struct {
	Name   string `json:"name"`
	Result string `json:"result"`
}

// Step is one delegation check.
type Step struct {
	Check  string `json:"check"`
	Passed bool   `json:"passed"`
	Detail string `json:"detail"`
}

// TestSummary counts the results of a tests file.
type TestSummary struct {
	Total  int `json:"total"`
	Passed int `json:"passed"`
	Failed int `json:"failed"`
}

// TestCaseResult is one case of a tests file (docs/cli.md).
type TestCaseResult struct {
	Name     string `json:"name"`
	Passed   bool   `json:"passed"`
	Decision Effect `json:"decision"`
	Expected Effect `json:"expected"`
	Policy   string `json:"policy"`
	Rule     string `json:"rule"`
	Reason   string `json:"reason"`
	// ExpectedReason is the case's expectReason, when it set one.
	ExpectedReason string `json:"expectedReason,omitempty"`
	Message        string `json:"message,omitempty"`
}
