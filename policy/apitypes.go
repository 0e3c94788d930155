package policy

import "github.com/meshguard/meshguard/api"

// API is d as the HTTP API shows it (docs/api.md). The explain trace is
// shared, not copied.
func (d *Decision) API() api.PolicyDecision {
	return api.PolicyDecision{
		Decision: d.Effect, Reason: d.Reason, Message: d.Message, Policy: d.Policy, Rule: d.Rule,
		TrustTier: d.Tier, PolicyRevision: d.Revision, Limits: d.Limits, Explain: (*api.Explanation)(d.Explain),
	}
}

// DecisionFromAPI is the inverse of Decision.API, for a decision the server
// made (the CLI prints online and offline decisions alike).
func DecisionFromAPI(d *api.PolicyDecision) Decision {
	return Decision{
		Effect: d.Decision, Reason: d.Reason, Message: d.Message, Policy: d.Policy, Rule: d.Rule,
		Tier: d.TrustTier, Revision: d.PolicyRevision, Limits: d.Limits, Explain: (*Explanation)(d.Explain),
	}
}

// API is r as the HTTP API shows it, without its Detail.
func (r *Result) API() api.TestCaseResult {
	return api.TestCaseResult{
		Name: r.Name, Passed: r.Passed, Decision: r.Decision, Expected: r.Expected, Policy: r.Policy,
		Rule: r.Rule, Reason: r.Reason, ExpectedReason: r.ExpectedReason, Message: r.Message,
	}
}

// ResultFromAPI is the inverse of Result.API.
func ResultFromAPI(r *api.TestCaseResult) Result {
	return Result{
		Name: r.Name, Passed: r.Passed, Decision: r.Decision, Expected: r.Expected, Policy: r.Policy,
		Rule: r.Rule, Reason: r.Reason, ExpectedReason: r.ExpectedReason, Message: r.Message,
	}
}
