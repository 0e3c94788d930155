package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/meshguard/meshguard/api"
	"github.com/meshguard/meshguard/client"
	"github.com/meshguard/meshguard/policy"
)

type policyTestFlags struct {
	policies, agents, file  string
	agent, action, resource string
	context, at             string
	chain                   []string
	verbose                 bool
}

func (a *app) policyTestCmd() *cobra.Command {
	var f policyTestFlags
	cmd := &cobra.Command{
		Use:   "test",
		Short: "Run policy test cases, or decide one request, against the server or offline",
		Long: "Evaluates test cases from --file, or one request given by --agent/--action.\n\n" +
			"Online (the default): against the agents and the policies in force on the server\n" +
			"(--gateway, --admin-token); nothing is audited and no rate limit is counted.\n" +
			"Offline (--policies DIR --agents FILE): against the policies on disk, with no server.\n\n" +
			"Exit codes: 0 all cases passed (one request: allowed), 1 some failed (denied), 2 bad input;\n" +
			"online also 3 (admin token) and 5 (server unreachable).",
		Example: "  meshguard policy test --file examples/tests.yaml\n" +
			"  meshguard policy test --agent researcher --action read:docs --chain orchestrator --verbose\n" +
			"  meshguard policy test --policies examples/policies --agents examples/agents.yaml --file examples/tests.yaml\n" +
			"  meshguard policy test --policies examples/policies --agents examples/agents.yaml --agent researcher --action read:docs --verbose",
		Args: exactArgs(0),
		RunE: runE(func(cmd *cobra.Command, _ []string) error { return a.runPolicyTest(cmd, &f) }),
	}
	fl := cmd.Flags()
	fl.StringVar(&f.policies, "policies", "", "policy file or directory: test offline, with no server")
	fl.StringVar(&f.agents, "agents", "", "agents file: agents: [{id, name, trustTier, tags, status}] (offline mode)")
	fl.StringVarP(&f.file, "file", "f", "", "tests file: tests: [{name, agent, action, resource, context, chain, at, expect}]")
	fl.StringVar(&f.agent, "agent", "", "agent id or name (one request)")
	fl.StringVar(&f.action, "action", "", "action, verb:resource (one request)")
	fl.StringVar(&f.resource, "resource", "", "resource (one request)")
	fl.StringVar(&f.context, "context", "", "request context as a JSON object (one request)")
	fl.StringSliceVar(&f.chain, "chain", nil, "agents that delegated the task, root first (one request)")
	fl.StringVar(&f.at, "at", "", "RFC 3339 time for time conditions (default now)")
	fl.BoolVarP(&f.verbose, "verbose", "v", false, "explain: every policy and rule, and each delegation check")
	return cmd
}

func (a *app) runPolicyTest(cmd *cobra.Command, f *policyTestFlags) error {
	single := f.agent != "" || f.action != ""
	online := f.policies == ""
	switch {
	case online && f.agents != "":
		return usageErr("--agents describes the agents of an offline test: give --policies too (without --policies the test runs against the server's agents and policies)")
	case !online && f.agents == "":
		return usageErr("--agents is required with --policies (the agents the cases name)")
	case f.file != "" && single:
		return usageErr("give either --file or --agent/--action, not both")
	case f.file == "" && !single:
		return usageErr("give --file tests.yaml, or --agent and --action for one request")
	case single && (f.agent == "" || f.action == ""):
		return usageErr("one request needs both --agent and --action")
	case !single && (f.resource != "" || f.context != "" || len(f.chain) > 0 || f.at != ""):
		return usageErr("--resource, --context, --chain and --at describe one request; with --file put them in the cases")
	}
	if online {
		return a.runPolicyTestOnline(cmd, f, single)
	}

	set, err := loadPolicies(cmd, f.policies)
	if err != nil {
		return a.badInput(err)
	}
	data, err := readInput("--agents", f.agents)
	if err != nil {
		return err
	}
	dir, err := policy.ParseAgents(f.agents, data)
	if err != nil {
		return a.badInput(err)
	}
	now := time.Now()
	if single {
		return a.testOne(set, dir, f, now)
	}
	data, err = readInput("--file", f.file)
	if err != nil {
		return err
	}
	cases, err := policy.ParseTests(f.file, data, dir)
	if err != nil {
		return a.badInput(err)
	}
	return a.printReport(policy.RunTests(set, cases, now, f.verbose), f.verbose)
}

// printReport prints a test run, offline or online: one line per case (and
// the explain trace under --verbose) and the summary, or the report as
// JSON. Some failed case makes it exit 1.
func (a *app) printReport(rep policy.Report, verbose bool) error {
	if a.g.json {
		if err := a.printJSON(rep); err != nil {
			return err
		}
	} else {
		for _, r := range rep.Results {
			a.say("%s", resultLine(r))
			if verbose {
				a.explain(&r.Detail, "    ")
			}
		}
		a.say("Results: %d passed, %d failed", rep.Summary.Passed, rep.Summary.Failed)
	}
	if rep.Summary.Failed > 0 {
		return &ExitError{Code: ExitFailure}
	}
	return nil
}

// resultLine is the one line per case (docs/cli.md).
func resultLine(r policy.Result) string {
	if r.Passed {
		return fmt.Sprintf("✓ %s PASS (%s)", r.Name, pastTense(r.Decision))
	}
	if r.ExpectedReason != "" {
		return fmt.Sprintf("✗ %s FAIL (expected: %s/%s, got: %s/%s)", r.Name, r.Expected, r.ExpectedReason, r.Decision, r.Reason)
	}
	return fmt.Sprintf("✗ %s FAIL (expected: %s, got: %s)", r.Name, r.Expected, r.Decision)
}

func pastTense(e policy.Effect) string {
	switch e {
	case policy.Allow:
		return "allowed"
	case policy.Approve:
		return "held for approval"
	}
	return "denied"
}

// badInput prints every located error to stderr and exits 2.
func (a *app) badInput(err error) error {
	var list policy.ErrorList
	if !errors.As(err, &list) {
		return err
	}
	for _, e := range list {
		fmt.Fprintf(a.Stderr, "✗ %v\n", e)
	}
	return &ExitError{Code: ExitUsage}
}

// oneResult is the --json shape of a single request.
type oneResult struct {
	Agent    string `json:"agent"`
	Action   string `json:"action"`
	Resource string `json:"resource"`
	policy.Decision
}

func (a *app) testOne(set *policy.Set, dir *policy.Directory, f *policyTestFlags, now time.Time) error {
	in := policy.Input{Action: f.action, Resource: f.resource, Time: now, Explain: f.verbose}
	var ok bool
	if in.Agent, ok = dir.Lookup(f.agent); !ok {
		return usageErr("--agent: unknown agent %q (not in %s)", f.agent, f.agents)
	}
	for _, c := range f.chain {
		s, ok := dir.Lookup(c)
		if !ok {
			return usageErr("--chain: unknown agent %q (not in %s)", c, f.agents)
		}
		in.Chain = append(in.Chain, s)
	}
	var err error
	if in.Context, err = parseContext(f.context); err != nil {
		return err
	}
	at, err := parseAt(f.at)
	if err != nil {
		return err
	}
	if !at.IsZero() {
		in.Time = at
	}
	// Shadow policies decide as if enforcing, as in test cases
	// (policy.RunTests): the set once they are promoted.
	d := set.Candidate().Evaluate(&in)
	chain := make([]string, len(in.Chain))
	for i := range in.Chain {
		chain[i] = in.Chain[i].Label()
	}
	return a.printOne(oneResult{Agent: in.Agent.Label(), Action: in.Action, Resource: in.Resource, Decision: d}, chain)
}

// parseContext reads --context: a JSON object, or nothing.
func parseContext(s string) (map[string]any, error) {
	if s == "" {
		return nil, nil
	}
	var ctx map[string]any
	dec := json.NewDecoder(bytes.NewReader([]byte(s)))
	dec.UseNumber()
	if err := dec.Decode(&ctx); err != nil || ctx == nil || dec.More() {
		return nil, usageErr("--context: expected a JSON object such as '{\"recipient\":\"a@example.com\"}'")
	}
	return ctx, nil
}

// parseAt reads --at: an RFC 3339 time, or nothing (the zero time).
func parseAt(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, usageErr("--at: %q is not an RFC 3339 time such as 2026-01-05T10:00:00Z", s)
	}
	return t, nil
}

// printOne prints the decision of one request, offline or online: a verdict
// line naming the chain and the action, then the details, or the result as
// JSON. A denial makes it exit 1.
func (a *app) printOne(r oneResult, chain []string) error {
	if a.g.json {
		if err := a.printJSON(r); err != nil {
			return err
		}
	} else {
		mark, verdict := "✓", "ALLOWED"
		switch {
		case r.Decision.Effect == policy.Approve:
			mark, verdict = "✗", "APPROVAL REQUIRED"
		case !r.Allowed():
			mark, verdict = "✗", "DENIED"
		}
		who := r.Agent
		if len(chain) > 0 {
			who = strings.Join(chain, " → ") + " → " + who
		}
		a.say("%s %s: %s %s", mark, verdict, who, r.Action)
		a.explain(&r.Decision, "  ")
	}
	if !r.Allowed() {
		return &ExitError{Code: ExitFailure}
	}
	return nil
}

// explain prints a decision's details, and its explain trace when it has one.
func (a *app) explain(d *policy.Decision, indent string) {
	if d.Policy != "" {
		rule := ""
		if d.Rule != "" {
			rule = ", rule " + d.Rule
		}
		a.say("%spolicy %s%s", indent, d.Policy, rule)
	}
	a.say("%sreason %s: %s", indent, d.Reason, d.Message)
	a.say("%stier %s, policy revision %s", indent, d.Tier, d.Revision)
	ex := d.Explain
	if ex == nil {
		return
	}
	for _, p := range ex.Policies {
		if !p.Covered {
			a.say("%s· %s: %s", indent, p.Name, p.Coverage)
			continue
		}
		how := "first matching rule"
		if p.Default {
			how = "defaultEffect"
		}
		a.say("%s• %s: covered, %s → %s by %s", indent, p.Name, strings.TrimPrefix(p.Coverage, "covers "), p.Effect, how)
		for _, r := range p.Rules {
			a.say("%s    - %s: %s", indent, r.Name, r.Result)
		}
	}
	for _, s := range ex.Delegation {
		mark := "✓"
		if !s.Passed {
			mark = "✗"
		}
		a.say("%s%s delegation %s: %s", indent, mark, s.Check, s.Detail)
	}
}

// runPolicyTestOnline runs the cases, or decides the one request, on the
// server: against the agents in its store and the policies in force
// (POST /admin/policies/test). The output is the offline mode's.
func (a *app) runPolicyTestOnline(cmd *cobra.Command, f *policyTestFlags, single bool) error {
	ctx := cmd.Context()
	if single {
		req := api.PolicyTestRequest{Agent: f.agent, Action: f.action, Resource: f.resource, Chain: f.chain, Verbose: f.verbose}
		var err error
		if req.Context, err = parseContext(f.context); err != nil {
			return err
		}
		at, err := parseAt(f.at)
		if err != nil {
			return err
		}
		if !at.IsZero() {
			req.At = &at
		}
		c, err := a.adminClient()
		if err != nil {
			return err
		}
		res, err := c.TestPolicy(ctx, req)
		if err != nil {
			return a.apiErr(err)
		}
		return a.printOne(oneResult{Agent: res.Agent, Action: res.Action, Resource: res.Resource, Decision: policy.DecisionFromAPI(&res.PolicyDecision)}, res.Chain)
	}
	data, err := readInput("--file", f.file)
	if err != nil {
		return err
	}
	if !utf8.Valid(data) {
		return usageErr("--file: %s is not valid UTF-8", f.file)
	}
	c, err := a.adminClient()
	if err != nil {
		return err
	}
	rep, err := c.RunPolicyTests(ctx, string(data), f.verbose)
	if err != nil {
		// The server locates errors in a file it calls "tests": name the
		// user's file instead, as the offline mode does.
		var ae *client.APIError
		if errors.As(err, &ae) {
			for i := range ae.Errors {
				if ae.Errors[i].File == "tests" {
					ae.Errors[i].File = f.file
				}
			}
		}
		return a.apiErr(err)
	}
	out := policy.Report{Summary: rep.Summary, Results: make([]policy.Result, len(rep.Results))}
	for i, r := range rep.Results {
		out.Results[i] = policy.ResultFromAPI(&r.TestCaseResult)
		if r.Detail != nil {
			out.Results[i].Detail = policy.DecisionFromAPI(r.Detail)
		}
	}
	return a.printReport(out, f.verbose)
}
