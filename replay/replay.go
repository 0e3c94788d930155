// Package replay decides recorded requests again with candidate policies
// (`meshguard policy replay`, POST /admin/policies/replay;
// docs/governance.md "Replay"): each audit record's policy decision is
// rebuilt from the record — its action, resource, time, the agent's tier,
// tags and chain as recorded (audit.Inputs) — and evaluated by the same
// policy.Set.Evaluate the engine runs. What would change is counted and
// grouped, with a bounded number of examples, as records stream past:
// memory does not grow with the trail.
//
// Only the policies are decided again. The engine's steps outside them —
// the token's validity, a route's tier minimum, the delegation token's
// chain cap, the hand-off rule, rate limits — are not: a record decided
// by one of them is counted, not re-decided.
package replay

import (
	"cmp"
	"errors"
	"fmt"
	"slices"

	"github.com/meshguard/meshguard/approval"

	"github.com/meshguard/meshguard/api"
	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/policy"
)

// Bounds.
const (
	DefaultExamples = 5
	MaxExamples     = 100
	// MaxGroups bounds a report's groups: they are keyed by the recorded
	// policy and rule, text a wasm filter ships; past it, changes are
	// counted (Report.OutsideGroups) but grouped no more.
	MaxGroups = 1000
)

// Kinds of change, as --fail-on names them.
const (
	AllowToDeny    = api.ReplayAllowToDeny
	DenyToAllow    = api.ReplayDenyToAllow
	AllowToApprove = api.ReplayAllowToApprove
	ApproveToAllow = api.ReplayApproveToAllow
	DenyToApprove  = api.ReplayDenyToApprove
	ApproveToDeny  = api.ReplayApproveToDeny
)

// Why a record was not decided again although it could be read: the keys
// of Report.Skipped.
const (
	SkipNotPolicy   = "not a policy decision" // refused before policy (a bad token, an unmapped path, a route's tier minimum, a bad delegation token)
	SkipAfterPolicy = "decided after policy"  // the policies allowed; the token's chain cap, the hand-off rule or a rate limit denied
	SkipDelegation  = "explicit delegation"   // POST /v1/delegations, decided by the hand-off rule
	SkipApproval    = "a person's answer"     // approval:approve or approval:deny, by the admin API or a signed link
	SkipFiltered    = "filtered out"          // --agent or --action
)

// NotRedecidedByReplay lists the engine's steps replay does not decide
// again, for reports to say so.
var NotRedecidedByReplay = []string{"token validity", "route tier minimum", "delegation token chain cap", "hand-off rule", "rate limits"}

// Options select and bound a replay.
type Options struct {
	// Agent keeps the records of this agent (id or name) only.
	Agent string
	// Action keeps the records whose action matches this pattern (the
	// policy language's *).
	Action string
	// Examples bounds the examples kept per group (DefaultExamples if 0,
	// at most MaxExamples).
	Examples int
}

// ErrOptions: options out of bounds.
var ErrOptions = errors.New("replay options")

// Replayer decides records again, one at a time, oldest first.
type Replayer struct {
	set     *policy.Set
	opts    Options
	action  policy.Glob
	b       builder
	in      policy.Input
	groups  map[groupKey]*Group
	not     map[string]*NotRedecided
	skipped map[string]int
	rep     Report
}

// New starts a replay of records against the candidate set.
func New(set *policy.Set, opts Options) (*Replayer, error) {
	switch {
	case opts.Examples < 0 || opts.Examples > MaxExamples:
		return nil, errorf("examples %d: expected 0 to %d", opts.Examples, MaxExamples)
	case opts.Examples == 0:
		opts.Examples = DefaultExamples
	}
	r := &Replayer{set: set, opts: opts, b: newBuilder(set),
		groups: map[groupKey]*Group{}, not: map[string]*NotRedecided{}, skipped: map[string]int{}}
	if opts.Action != "" {
		r.action = policy.CompileGlob(opts.Action)
	}
	r.rep.Revision = set.Revision()
	return r, nil
}

func errorf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrOptions}, args...)...)
}

// Add decides one record again and counts the outcome.
func (r *Replayer) Add(rec *audit.Record) {
	r.rep.Records++
	if r.rep.From.IsZero() || rec.Timestamp.Before(r.rep.From) {
		r.rep.From = rec.Timestamp
	}
	if rec.Timestamp.After(r.rep.To) {
		r.rep.To = rec.Timestamp
	}
	switch {
	case rec.Unreadable != "":
		r.cannot(rec, WhyUnreadable)
		return
	case r.opts.Agent != "" && rec.AgentID != r.opts.Agent && rec.AgentName != r.opts.Agent,
		r.opts.Action != "" && !r.action.Match(rec.Action):
		r.skipped[SkipFiltered]++
		return
	case rec.Source == "delegation":
		r.skipped[SkipDelegation]++
		return
	case personsAnswer(rec):
		// A person answered an approval: no request to decide again (the
		// request's own records are).
		r.skipped[SkipApproval]++
		return
	case rec.Inputs == nil:
		if policyReason(rec) {
			r.cannot(rec, WhyBeforeInputs)
		} else {
			r.skipped[SkipNotPolicy]++
		}
		return
	case rec.Inputs.AfterPolicy:
		r.skipped[SkipAfterPolicy]++
		return
	}
	if err := r.b.input(rec, &r.in); err != nil {
		var e *errNot
		errors.As(err, &e)
		r.cannot(rec, e.why)
		return
	}
	d := r.set.Evaluate(&r.in)
	r.rep.Redecided++
	was, now := recordedEffect(rec), string(d.Effect)
	if was == now {
		r.rep.Unchanged++
		return
	}
	kind := was + "-to-" + now
	*r.rep.Counter(kind)++ // was != now: one of the six kinds
	k := groupKey{kind, rec.Policy, rec.Rule, d.Policy, d.Rule}
	g := r.groups[k]
	if g == nil && len(r.groups) >= MaxGroups {
		r.rep.OutsideGroups++
		return
	}
	if g == nil {
		g = &Group{Kind: kind, Old: Outcome{Decision: was, Policy: rec.Policy, Rule: rec.Rule},
			New: Outcome{Decision: string(d.Effect), Policy: d.Policy, Rule: d.Rule}, Examples: []Example{}}
		r.groups[k] = g
	}
	g.Count++
	if len(g.Examples) < r.opts.Examples {
		g.Examples = append(g.Examples, Example{ID: rec.ID, TraceID: rec.TraceID, Time: rec.Timestamp, Agent: rec.AgentName,
			Action: rec.Action, Resource: rec.Resource, OldReason: rec.Reason, NewReason: d.Reason, Message: d.Message})
	}
}

// recordedEffect is the effect the policies gave a record: approve when an
// approve rule held it for a person (whether the person then granted it,
// denied it or has not answered, or audit mode asked nobody), else its
// decision.
func recordedEffect(rec *audit.Record) string {
	if rec.Approval != nil || approval.IsReason(rec.Reason) {
		return string(api.Approve)
	}
	return rec.Decision
}

func (r *Replayer) cannot(rec *audit.Record, why string) {
	n := r.not[why]
	if n == nil {
		n = &NotRedecided{Why: why, IDs: []string{}}
		r.not[why] = n
	}
	n.Count++
	if len(n.IDs) < r.opts.Examples {
		n.IDs = append(n.IDs, rec.ID)
	}
}

// policyReasons are the reasons only a policy decision gives: a record
// without inputs giving one was sealed before records held them.
var policyReasons = map[string]bool{
	policy.ReasonRuleAllow: true, policy.ReasonDefaultAllow: true, policy.ReasonRuleDeny: true,
	policy.ReasonNoMatchingRule: true, policy.ReasonNoPolicy: true, policy.ReasonDelegationCycle: true,
	policy.ReasonDelegationUntrusted: true, policy.ReasonDelegationMemberDenied: true,
	policy.ReasonDelegationNotPermitted: true, policy.ReasonDelegationCeiling: true, policy.ReasonDelegationScope: true,
	policy.ReasonDelegationDepth: true,
}

func policyReason(rec *audit.Record) bool {
	return rec.Decision == "allow" || policyReasons[rec.Reason]
}

// The report's types are the API's (docs/api.md).
type (
	Report       = api.PolicyReplayReport
	Group        = api.PolicyReplayGroup
	Outcome      = api.PolicyReplayOutcome
	Example      = api.PolicyReplayExample
	NotRedecided = api.PolicyReplayNotRedecided
)

type groupKey struct{ kind, oldPolicy, oldRule, newPolicy, newRule string }

// Report is the outcome so far, sorted.
func (r *Replayer) Report() Report {
	rep := r.rep
	rep.Changes = make([]*Group, 0, len(r.groups))
	for _, g := range r.groups {
		rep.Changes = append(rep.Changes, g)
	}
	slices.SortFunc(rep.Changes, func(a, b *Group) int {
		return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(b.Count, a.Count), cmp.Compare(a.New.Policy, b.New.Policy),
			cmp.Compare(a.New.Rule, b.New.Rule), cmp.Compare(a.Old.Policy, b.Old.Policy), cmp.Compare(a.Old.Rule, b.Old.Rule))
	})
	rep.NotRedecided = make([]*NotRedecided, 0, len(r.not))
	for _, n := range r.not {
		rep.NotRedecided = append(rep.NotRedecided, n)
	}
	slices.SortFunc(rep.NotRedecided, func(a, b *NotRedecided) int { return cmp.Compare(a.Why, b.Why) })
	rep.Skipped = make(map[string]int, len(r.skipped))
	for k, v := range r.skipped {
		rep.Skipped[k] = v
	}
	rep.NotReplayed = NotRedecidedByReplay
	return rep
}

// personsAnswer reports whether rec is a person's answer to an approval
// (approvalapi's record of a decision, made through the admin API, a
// signed link or the console), not a request the policies decided.
func personsAnswer(rec *audit.Record) bool {
	switch rec.Source {
	case "admin", "link", "console":
		return true
	}
	return false
}
