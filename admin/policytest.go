package admin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/meshguard/meshguard/api"
	"github.com/meshguard/meshguard/identity"
	"github.com/meshguard/meshguard/internal/httpjson"
	"github.com/meshguard/meshguard/internal/yamldoc"
	"github.com/meshguard/meshguard/policy"
)

// maxTestAgents bounds the distinct agents one tests file may name.
const maxTestAgents = 1000

// subjectOf is the policy engine's view of a stored agent.
func subjectOf(a identity.Agent) policy.Subject {
	return policy.Subject{ID: a.ID, Name: a.Name, Tier: a.TrustTier, Tags: a.Tags, Active: a.Active()}
}

// testPolicies runs one case or a tests file against the agents in the
// store and the policies in force. A denial is a result (200), not an
// error; unknown agents and malformed cases are 400s.
func (a *API) testPolicies(w http.ResponseWriter, r *http.Request) {
	var req api.PolicyTestRequest
	if !httpjson.DecodeJSON(w, r, &req, MaxPolicyBodyBytes, false) {
		return
	}
	set := a.cfg.Policies.Current()
	if req.Tests != "" {
		if req.Agent != "" || req.Action != "" || req.Resource != "" || req.Context != nil || req.Chain != nil || req.At != nil {
			httpjson.BadRequest(w, "give either tests or one case (agent, action, …), not both")
			return
		}
		a.runTests(w, r, set, &req)
		return
	}
	switch {
	case req.Agent == "":
		httpjson.BadRequest(w, "agent: required (an agent id or name)")
		return
	case req.Action == "":
		httpjson.BadRequest(w, "action: required (verb:resource)")
		return
	case len(req.Action) > policy.MaxPatternLen || !strings.Contains(req.Action, ":") || strings.ContainsAny(req.Action, " \t\r\n"):
		httpjson.BadRequest(w, "action: %q: expected verb:resource without whitespace, at most %d bytes", req.Action, policy.MaxPatternLen)
		return
	case len(req.Chain) > policy.MaxDelegation+1:
		httpjson.BadRequest(w, "chain: more than %d agents", policy.MaxDelegation+1)
		return
	}
	in := policy.Input{Action: req.Action, Resource: req.Resource, Context: req.Context, Time: a.cfg.Now(), Explain: req.Verbose}
	if req.At != nil {
		in.Time = *req.At
	}
	var ok bool
	if in.Agent, ok = a.testSubject(w, r, "agent", req.Agent); !ok {
		return
	}
	for i, c := range req.Chain {
		s, ok := a.testSubject(w, r, fmt.Sprintf("chain[%d]", i), c)
		if !ok {
			return
		}
		in.Chain = append(in.Chain, s)
	}
	// Shadow policies decide as if enforcing, as in test cases
	// (policy.RunTests): the set once they are promoted.
	d := set.Candidate().Evaluate(&in)
	out := api.PolicyTestResult{Agent: in.Agent.Label(), Action: in.Action, Resource: in.Resource, Allowed: d.Allowed(), PolicyDecision: d.API()}
	for _, s := range in.Chain {
		out.Chain = append(out.Chain, s.Label())
	}
	httpjson.WriteJSON(w, http.StatusOK, out)
}

// testSubject resolves an agent named by a test; it answers the request
// itself when it fails.
func (a *API) testSubject(w http.ResponseWriter, r *http.Request, field, key string) (policy.Subject, bool) {
	ag, err := a.lookupAgent(r.Context(), key)
	switch {
	case errors.Is(err, identity.ErrNotFound):
		httpjson.BadRequest(w, "%s: no agent with id or name %q", field, key)
		return policy.Subject{}, false
	case err != nil:
		a.internalError(w, r, "looking up the agent", err)
		return policy.Subject{}, false
	}
	return subjectOf(ag), true
}

// runTests runs a tests file.
func (a *API) runTests(w http.ResponseWriter, r *http.Request, set *policy.Set, req *api.PolicyTestRequest) {
	const file = "tests"
	dir, err := a.testDirectory(r.Context(), []byte(req.Tests))
	if err != nil {
		a.internalError(w, r, "looking up the agents of the tests", err)
		return
	}
	cases, err := policy.ParseTests(file, []byte(req.Tests), dir)
	if err != nil {
		les := locatedErrors(err)
		for i := range les {
			les[i].Message = strings.Replace(les[i].Message, "(not in the agents file)", "(no such agent)", 1)
		}
		httpjson.WriteJSON(w, http.StatusBadRequest, api.ErrorBody{Error: "bad_request", Message: countErrors(len(les)) + " in the tests", Errors: les})
		return
	}
	rep := policy.RunTests(set, cases, a.cfg.Now(), req.Verbose)
	out := api.TestReport{Summary: rep.Summary, Results: make([]api.TestResult, len(rep.Results))}
	for i, res := range rep.Results {
		out.Results[i] = api.TestResult{TestCaseResult: res.API()}
		if req.Verbose {
			d := res.Detail.API()
			out.Results[i].Detail = &d
		}
	}
	httpjson.WriteJSON(w, http.StatusOK, out)
}

// testDirectory looks up the agents a tests file names (agent and chain of
// every case) in the store. Malformed files are left to ParseTests, which
// locates the problem; unknown agents are left out, and ParseTests reports
// them where they are named.
func (a *API) testDirectory(ctx context.Context, data []byte) (*policy.Directory, error) {
	var doc struct {
		Tests []struct {
			Agent any   `yaml:"agent"`
			Chain []any `yaml:"chain"`
		} `yaml:"tests"`
	}
	_ = yamldoc.Decode(yaml.NewDecoder(bytes.NewReader(data)), &doc) // errors: see ParseTests
	keys := map[string]bool{}
	add := func(v any) {
		if s, ok := v.(string); ok && s != "" && len(s) <= 2*identity.MaxNameLen {
			keys[s] = true
		}
	}
	for _, c := range doc.Tests {
		add(c.Agent)
		for _, v := range c.Chain {
			add(v)
		}
		if len(keys) > maxTestAgents {
			break
		}
	}
	var subjects []policy.Subject
	for key := range keys {
		ag, err := a.lookupAgent(ctx, key)
		switch {
		case errors.Is(err, identity.ErrNotFound):
			continue
		case err != nil:
			return nil, err
		}
		subjects = append(subjects, subjectOf(ag))
	}
	return policy.NewDirectory(subjects), nil
}
