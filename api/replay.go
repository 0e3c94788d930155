package api

import "time"

// PolicyReplayRequest is the body of POST /admin/policies/replay: the
// candidate policies (as POST /admin/policies takes them) and which
// records to decide again with them.
type PolicyReplayRequest struct {
	Files    []PolicyFile `json:"files"`
	From     time.Time    `json:"from,omitzero"`    // from ≤ timestamp
	To       time.Time    `json:"to,omitzero"`      // timestamp < to
	Agent    string       `json:"agent,omitempty"`  // an agent id or name
	Action   string       `json:"action,omitempty"` // a pattern (*)
	Examples int          `json:"examples,omitempty"`
}

// Kinds of change (PolicyReplayGroup.Kind), as --fail-on names them: the
// recorded effect, "-to-", the candidate's. An effect is allow, deny or
// approve (a request an approve rule held for a person, whatever the
// person then answered).
const (
	ReplayAllowToDeny    = "allow-to-deny"
	ReplayDenyToAllow    = "deny-to-allow"
	ReplayAllowToApprove = "allow-to-approve"
	ReplayApproveToAllow = "approve-to-allow"
	ReplayDenyToApprove  = "deny-to-approve"
	ReplayApproveToDeny  = "approve-to-deny"
)

// ReplayKinds lists every kind of change.
var ReplayKinds = []string{ReplayAllowToDeny, ReplayDenyToAllow, ReplayAllowToApprove, ReplayApproveToAllow, ReplayDenyToApprove, ReplayApproveToDeny}

// PolicyReplayReport is what a replay found; its JSON is `policy replay --json`'s and
// POST /admin/policies/replay's answer (docs/cli.md).
type PolicyReplayReport struct {
	Revision string    `json:"revision"` // the candidate set's
	From     time.Time `json:"from,omitzero"`
	To       time.Time `json:"to,omitzero"`
	// Records read; Redecided of them decided again, Unchanged of those
	// with the same effect (allow, deny or approve).
	Records     int `json:"records"`
	Redecided   int `json:"redecided"`
	Unchanged   int `json:"unchanged"`
	AllowToDeny int `json:"allowToDeny"`
	DenyToAllow int `json:"denyToAllow"`
	// The changes to or from approve (a request held for a person).
	AllowToApprove int `json:"allowToApprove"`
	ApproveToAllow int `json:"approveToAllow"`
	DenyToApprove  int `json:"denyToApprove"`
	ApproveToDeny  int `json:"approveToDeny"`
	// Changes, allow→deny first, the largest groups first.
	Changes []*PolicyReplayGroup `json:"changes"`
	// OutsideGroups counts the changes counted above that no group shows:
	// a report holds at most 1000 groups (replay.MaxGroups).
	OutsideGroups int                         `json:"outsideGroups,omitempty"`
	NotRedecided  []*PolicyReplayNotRedecided `json:"notRedecided"`
	// Skipped counts the records replay does not decide again, by why.
	Skipped map[string]int `json:"skipped"`
	// NotReplayed names the engine's steps replay does not decide.
	NotReplayed []string `json:"notReplayed"`
}

// PolicyReplayGroup is the records whose decision changes the same way: the same kind,
// the same deciding rule before and after.
type PolicyReplayGroup struct {
	Kind     string                `json:"kind"`
	Old      PolicyReplayOutcome   `json:"old"`
	New      PolicyReplayOutcome   `json:"new"`
	Count    int                   `json:"count"`
	Examples []PolicyReplayExample `json:"examples"`
}

// PolicyReplayOutcome is a decision and the policy and rule that made it.
type PolicyReplayOutcome struct {
	Decision string `json:"decision"`
	Policy   string `json:"policy,omitempty"`
	Rule     string `json:"rule,omitempty"`
}

// PolicyReplayExample is one record of a group.
type PolicyReplayExample struct {
	ID        string    `json:"id"`
	TraceID   string    `json:"traceId"`
	Time      time.Time `json:"timestamp"`
	Agent     string    `json:"agent"`
	Action    string    `json:"action"`
	Resource  string    `json:"resource"`
	OldReason string    `json:"oldReason"`
	NewReason string    `json:"newReason"`
	Message   string    `json:"message"` // the candidate's sentence
}

// PolicyReplayNotRedecided is the records that could not be decided again for one
// reason (package replay's Why* constants), with the first ids.
type PolicyReplayNotRedecided struct {
	Why   string   `json:"why"`
	Count int      `json:"count"`
	IDs   []string `json:"ids"`
}

// Failed reports whether rep holds a change of one of kinds
// (ReplayAllowToDeny, ReplayDenyToAllow): what --fail-on gates on.
func (rep *PolicyReplayReport) Failed(kinds []string) bool {
	for _, k := range kinds {
		if n := rep.Counter(k); n != nil && *n > 0 {
			return true
		}
	}
	return false
}

// Counter is the field counting changes of kind, nil for an unknown kind.
func (rep *PolicyReplayReport) Counter(kind string) *int {
	switch kind {
	case ReplayAllowToDeny:
		return &rep.AllowToDeny
	case ReplayDenyToAllow:
		return &rep.DenyToAllow
	case ReplayAllowToApprove:
		return &rep.AllowToApprove
	case ReplayApproveToAllow:
		return &rep.ApproveToAllow
	case ReplayDenyToApprove:
		return &rep.DenyToApprove
	case ReplayApproveToDeny:
		return &rep.ApproveToDeny
	}
	return nil
}
