package audit

import (
	"cmp"
	"slices"
	"time"
)

// Bounds of a ShadowReport: it reads any number of records in constant
// memory.
const (
	DefaultShadowExamples = 3
	MaxShadowExamples     = 20
	// MaxShadowGroups bounds the groups (shadow policy, rule, direction);
	// records of further groups are counted in ShadowReport.Ungrouped.
	MaxShadowGroups = 1000
)

// ShadowReport is the disagreements of shadow policies over a period
// (meshguard policy shadow): the records carrying a shadow answer, grouped
// by shadow policy, rule and direction.
type ShadowReport struct {
	From    time.Time `json:"from,omitzero"`
	To      time.Time `json:"to,omitzero"`
	Policy  string    `json:"policy,omitempty"` // only this shadow policy's
	Records int       `json:"records"`          // disagreements counted
	// Groups, most records first.
	Groups []*ShadowGroup `json:"groups"`
	// Ungrouped counts disagreements beyond MaxShadowGroups groups.
	Ungrouped int `json:"ungrouped,omitempty"`
}

// ShadowGroup is the disagreements of one shadow rule in one direction:
// Enforced is what the policies in force answered (allow, deny, approve),
// Shadow what the shadow policy would have.
type ShadowGroup struct {
	Policy    string          `json:"policy"`
	Rule      string          `json:"rule"` // "" for the policy's default or a delegation check
	Enforced  string          `json:"enforced"`
	Shadow    string          `json:"shadow"`
	Reason    string          `json:"reason"` // the shadow answer's reason code
	Count     int             `json:"count"`
	Examples  []ShadowExample `json:"examples"`
	firstSeen int
}

// ShadowExample is one record of a group: enough to find it and its trace.
type ShadowExample struct {
	ID       string    `json:"id"`
	TraceID  string    `json:"traceId"`
	Time     time.Time `json:"timestamp"`
	Agent    string    `json:"agent"`
	Action   string    `json:"action"`
	Resource string    `json:"resource"`
}

// ShadowReporter builds a ShadowReport from records fed to it in any order.
type ShadowReporter struct {
	rep      ShadowReport
	examples int
	groups   map[shadowKey]*ShadowGroup
}

type shadowKey struct{ policy, rule, enforced, shadow, reason string }

// NewShadowReporter starts a report of the records of policy ("" for
// every shadow policy), showing examples per group (0: the default;
// capped at MaxShadowExamples).
func NewShadowReporter(policy string, examples int) *ShadowReporter {
	if examples <= 0 {
		examples = DefaultShadowExamples
	}
	return &ShadowReporter{rep: ShadowReport{Policy: policy}, examples: min(examples, MaxShadowExamples), groups: map[shadowKey]*ShadowGroup{}}
}

// Add counts r if it carries a shadow answer (of the reporter's policy).
func (sr *ShadowReporter) Add(r *Record) {
	sh := r.Shadow
	if sh == nil || sr.rep.Policy != "" && sh.Policy != sr.rep.Policy {
		return
	}
	sr.rep.Records++
	k := shadowKey{sh.Policy, sh.Rule, EnforcedEffect(r), sh.Decision, sh.Reason}
	g := sr.groups[k]
	if g == nil {
		if len(sr.groups) == MaxShadowGroups {
			sr.rep.Ungrouped++
			return
		}
		g = &ShadowGroup{Policy: k.policy, Rule: k.rule, Enforced: k.enforced, Shadow: k.shadow, Reason: k.reason,
			Examples: []ShadowExample{}, firstSeen: len(sr.groups)}
		sr.groups[k] = g
	}
	g.Count++
	if len(g.Examples) < sr.examples {
		agent := r.AgentName
		if agent == "" {
			agent = r.AgentID
		}
		g.Examples = append(g.Examples, ShadowExample{ID: r.ID, TraceID: r.TraceID, Time: r.Timestamp, Agent: agent,
			Action: r.Action, Resource: r.Resource})
	}
}

// EnforcedEffect is what the policies in force answered for r: approve
// when it was about an approval, allow when they allowed and a later step
// (a rate limit, the hand-off rule) denied, else the record's decision.
func EnforcedEffect(r *Record) string {
	switch {
	case r.Approval != nil:
		return "approve"
	case r.Inputs != nil && r.Inputs.AfterPolicy:
		return "allow"
	}
	return r.Decision
}

// Report is the report so far, groups most records first.
func (sr *ShadowReporter) Report(from, to time.Time) ShadowReport {
	rep := sr.rep
	rep.From, rep.To = from, to
	rep.Groups = make([]*ShadowGroup, 0, len(sr.groups))
	for _, g := range sr.groups {
		rep.Groups = append(rep.Groups, g)
	}
	slices.SortFunc(rep.Groups, func(a, b *ShadowGroup) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.Policy, b.Policy), cmp.Compare(a.Rule, b.Rule),
			cmp.Compare(a.Enforced, b.Enforced), cmp.Compare(a.Shadow, b.Shadow), cmp.Compare(a.firstSeen, b.firstSeen))
	})
	return rep
}
