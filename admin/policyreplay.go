package admin

import (
	"errors"
	"net/http"

	"github.com/meshguard/meshguard/api"
	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/internal/httpjson"
	"github.com/meshguard/meshguard/policy"
	"github.com/meshguard/meshguard/replay"
	"github.com/meshguard/meshguard/store"
)

// replayPolicies decides the recorded requests again with the candidate
// policies of the body — the whole candidate set, not a change to the one
// in force — streaming the trail (docs/governance.md "Replay"). Nothing is
// stored or changed. Bad policies are a 400 with their located errors.
func (a *API) replayPolicies(w http.ResponseWriter, r *http.Request) {
	var req api.PolicyReplayRequest
	if !httpjson.DecodeJSON(w, r, &req, MaxPolicyBodyBytes, false) {
		return
	}
	switch {
	case len(req.Files) == 0 || len(req.Files) > maxPolicyFiles:
		httpjson.BadRequest(w, "files: expected 1 to %d files", maxPolicyFiles)
		return
	case req.Examples < 0 || req.Examples > replay.MaxExamples:
		httpjson.BadRequest(w, "examples: expected 0 to %d", replay.MaxExamples)
		return
	case len(req.Agent) > maxFileLabelLen || len(req.Action) > policy.MaxPatternLen:
		httpjson.BadRequest(w, "agent or action: longer than the limit")
		return
	case !req.From.IsZero() && !req.To.IsZero() && !req.From.Before(req.To):
		httpjson.BadRequest(w, "from must be before to")
		return
	}
	if !checkFileLabels(w, req.Files) {
		return
	}
	var all []*policy.Policy
	var errs policy.ErrorList
	for _, f := range req.Files {
		ps, err := policy.Parse(f.Name, []byte(f.YAML))
		if err != nil {
			errs = append(errs, locatedList(err)...)
			continue
		}
		all = append(all, ps...)
	}
	var set *policy.Set
	if len(errs) == 0 {
		var err error
		if set, err = policy.Compile(all); err != nil {
			errs = locatedList(err)
		}
	}
	if len(errs) > 0 {
		httpjson.WriteJSON(w, http.StatusBadRequest, api.ErrorBody{Error: "bad_request",
			Message: countErrors(len(errs)) + " in the candidate policies", Errors: locatedErrors(errs)})
		return
	}
	rp, err := replay.New(set, replay.Options{Agent: req.Agent, Action: req.Action, Examples: req.Examples})
	if err != nil {
		httpjson.BadRequest(w, "%v", err)
		return
	}
	err = a.cfg.Audit.ScanAuditFiltered(r.Context(), store.AuditFilter{From: req.From, To: req.To}, func(rec audit.Record, _ string) error {
		rp.Add(&rec)
		return nil
	})
	switch {
	case errors.Is(err, store.ErrInvalidFilter):
		httpjson.BadRequest(w, "%v", err)
		return
	case err != nil:
		a.internalError(w, r, "replaying the audit trail", err)
		return
	}
	httpjson.WriteJSON(w, http.StatusOK, rp.Report())
}
