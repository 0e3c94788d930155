package policy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meshguard/meshguard/trust"
)

// Oracles the policy fuzzers check on every input, beyond "no panic".

// covers re-implements coverage from docs/policies.md ("ANY selector
// covers the agent; absent or all empty = every agent"), independently of
// the Set's bitset index.
func covers(p *Policy, a *Subject) bool {
	if p.AppliesTo.Empty() {
		return true
	}
	return slices.Contains(p.AppliesTo.TrustTiers, a.Tier) ||
		slices.ContainsFunc(p.AppliesTo.Tags, func(t string) bool { return slices.Contains(a.Tags, t) }) ||
		slices.ContainsFunc(p.AppliesTo.AgentIDs, func(id string) bool { return id == a.ID || (a.Name != "" && id == a.Name) })
}

// checkDecision holds d, the decision for in, to what docs/policies.md says
// each reason means, checked against the policies themselves.
func checkDecision(t testing.TB, s *Set, in *Input, d Decision) {
	t.Helper()
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("decision %s/%s policy=%q rule=%q (%s) for agent %+v action %q chain %d scope %v: %s",
			d.Effect, d.Reason, d.Policy, d.Rule, d.Message, in.Agent, in.Action, len(in.Chain), in.Scope, fmt.Sprintf(format, args...))
	}
	allowReason := d.Reason == ReasonRuleAllow || d.Reason == ReasonDefaultAllow
	switch {
	case d.Effect != Allow && d.Effect != Deny && d.Effect != Approve:
		fail("effect is neither allow, deny nor approve")
	case (d.Effect == Allow) != allowReason, (d.Effect == Approve) != (d.Reason == ReasonApprovalRequired):
		fail("effect and reason disagree")
	case d.Effect == Deny && d.Limits != nil:
		fail("a denial carries rate limits")
	case d.Message == "":
		fail("no message")
	case d.Revision != s.Revision():
		fail("revision %q, the set's is %q", d.Revision, s.Revision())
	case !in.Agent.Active && d.Reason != ReasonAgentRevoked:
		fail("a revoked actor was not denied as revoked")
	}
	named, ok := s.Policy(d.Policy)
	if d.Policy != "" && !ok {
		fail("names a policy the set does not hold")
	}
	if ok && named.Shadow() {
		fail("a shadow policy decided")
	}
	switch d.Reason {
	case ReasonRuleAllow, ReasonRuleDeny, ReasonApprovalRequired:
		if !ok {
			fail("a rule decided, but no policy is named")
		}
		want := map[string]Effect{ReasonRuleAllow: Allow, ReasonRuleDeny: Deny, ReasonApprovalRequired: Approve}[d.Reason]
		i := slices.IndexFunc(named.Rules, func(r Rule) bool { return r.Name == d.Rule })
		switch {
		case !covers(named, &in.Agent):
			fail("the deciding policy does not cover the actor")
		case i < 0:
			fail("the deciding rule is not in the policy")
		case named.Rules[i].Effect != want:
			fail("the deciding rule's effect is %s", named.Rules[i].Effect)
		case !slices.ContainsFunc(named.Rules[i].Actions, func(p string) bool { return Match(p, in.Action) }):
			fail("no action pattern of the deciding rule matches the action")
		case want == Approve && (d.ApproveRule == nil || named.Rules[i].TTL != d.ApproveRule.TTL || !slices.Equal(named.Rules[i].Approvers, d.ApproveRule.Approvers)):
			fail("the approval's ttl or approvers are not the deciding rule's")
		}
	case ReasonNoPolicy:
		if d.Policy != "" || slices.ContainsFunc(s.Policies(), func(p *Policy) bool { return !p.Shadow() && covers(p, &in.Agent) }) {
			fail("a policy covers the actor")
		}
	case ReasonNoMatchingRule:
		if !ok || !covers(named, &in.Agent) || named.DefaultEffect != Deny || d.Rule != "" {
			fail("the named policy does not cover the actor with a default deny")
		}
	case ReasonDefaultAllow:
		for _, p := range s.Policies() {
			if !p.Shadow() && covers(p, &in.Agent) && p.DefaultEffect != Allow {
				fail("covering policy %q defaults to %s", p.Name, p.DefaultEffect)
			}
		}
		if !ok || !covers(named, &in.Agent) || d.Rule != "" {
			fail("the named policy does not cover the actor")
		}
	case ReasonAgentRevoked:
		if in.Agent.Active {
			fail("the actor is active")
		}
	default:
		if !strings.HasPrefix(d.Reason, "delegation_") {
			fail("unknown reason")
		}
		if len(in.Chain) == 0 && in.Scope == nil {
			fail("a delegation reason without a chain or a scope")
		}
	}
}

// readsDelegation reports whether a policy's rules look at the chain, so
// that acting alone can decide differently from acting for a chain.
func readsDelegation(p *Policy) bool {
	return slices.ContainsFunc(p.Rules, func(r Rule) bool {
		return r.Conditions != nil && (r.Conditions.Delegated != nil || r.Conditions.Chain != nil)
	})
}

// checkDelegationOnlyNarrows: delegation checks "can only deny" (docs/policies.md,
// step 4). When no rule reads the chain, an allowed delegated request is
// allowed alone by the same rule, and an empty token scope allows nothing.
func checkDelegationOnlyNarrows(t testing.TB, s *Set, in Input, d Decision) {
	t.Helper()
	alone := in
	alone.Chain, alone.Scope = nil, nil
	a := check(t, s, alone)
	if d.Allowed() && (!a.Allowed() || a.Policy != d.Policy || a.Rule != d.Rule) {
		t.Fatalf("allowed for a chain (%s/%s) but alone %s/%s %s: delegation widened what the actor may do", d.Policy, d.Rule, a.Effect, a.Reason, a.Message)
	}
	if len(in.Chain) > 0 {
		none := in
		none.Scope = []string{}
		if n := check(t, s, none); n.Allowed() {
			t.Fatalf("an empty token scope allowed %q (%s)", in.Action, n.Message)
		}
	}
}

// probes derives requests from the policies' own patterns and literals, so
// the rules' conditions hold for some and fail for others.
func probes(ps []*Policy) []Input {
	bare := func(p string) string { return strings.ReplaceAll(p, "*", "x") }
	agents := []Subject{{ID: "agent_nobody", Tier: trust.Verified, Active: true}}
	actions := []string{"a:b", "read:x"}
	resources := []string{"", "/x"}
	var roots []Subject
	ctxKeys := map[string][]any{}
	add := func(k string, v any) {
		if len(ctxKeys[k]) < 6 {
			ctxKeys[k] = append(ctxKeys[k], v)
		}
	}
	for _, p := range ps {
		a := Subject{ID: "agent_" + p.Name, Name: p.Name, Tags: p.AppliesTo.Tags, Active: true}
		if len(p.AppliesTo.TrustTiers) > 0 {
			a.Tier = p.AppliesTo.TrustTiers[0]
		}
		if len(p.AppliesTo.AgentIDs) > 0 {
			a.ID = p.AppliesTo.AgentIDs[0]
		}
		agents = append(agents, a)
		for _, r := range p.Rules {
			for _, pat := range r.Actions {
				actions = append(actions, bare(pat), strings.ReplaceAll(pat, "*", ""))
			}
			c := r.Conditions
			if c == nil {
				continue
			}
			if rc := c.Resource; rc != nil {
				resources = append(resources, rc.StartsWith+rc.Contains)
				for _, m := range rc.Matches {
					resources = append(resources, bare(m))
				}
			}
			if ch := c.Chain; ch != nil {
				for _, g := range append(slices.Clone(ch.Root), ch.Includes...) {
					roots = append(roots, Subject{ID: bare(g), Name: bare(g), Tier: trust.Trusted, Active: true})
				}
			}
			for k, cc := range c.Context {
				if cc.Equals != nil {
					add(k, valueJSON(*cc.Equals))
				}
				for _, v := range cc.In {
					add(k, valueJSON(v))
				}
				for _, m := range []*string{cc.Matches, cc.NotMatches} {
					if m != nil {
						add(k, bare(*m))
					}
				}
				for _, n := range []*float64{cc.Lt, cc.Lte, cc.Gt, cc.Gte} {
					if n != nil {
						add(k, *n)
						add(k, strconv.FormatFloat(*n+1, 'g', -1, 64))
						add(k, *n-1)
					}
				}
			}
		}
	}
	times := []time.Time{
		time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC),  // Monday morning
		time.Date(2026, 3, 7, 23, 30, 0, 0, time.UTC), // Saturday night
		time.Date(2026, 3, 4, 3, 0, 0, 0, time.UTC),   // Wednesday, early
	}
	keys := make([]string, 0, len(ctxKeys))
	for k := range ctxKeys {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	const n = 48
	out := make([]Input, 0, n)
	for i := range n {
		in := Input{
			Agent:    agents[i%len(agents)],
			Action:   actions[(i/2)%len(actions)],
			Resource: resources[(i/3)%len(resources)],
			Time:     times[i%len(times)],
			Context:  map[string]any{},
		}
		for j, k := range keys {
			if vs := ctxKeys[k]; (i+j)%(len(vs)+1) < len(vs) { // one step in each cycle leaves k out
				in.Context[k] = vs[(i+j)%(len(vs)+1)]
			}
		}
		if len(roots) > 0 && i%2 == 1 {
			in.Chain = []Subject{roots[(i/2)%len(roots)]}
		}
		out = append(out, in)
	}
	return out
}

// checkJSONRoundTrip: every policy, encoded by JSON (the form the wasm
// filter and the admin API carry) and parsed back, is the same policy, and
// the set built from the copies decides every probe exactly as s does.
func checkJSONRoundTrip(t testing.TB, ps []*Policy, s *Set) {
	t.Helper()
	back := make([]*Policy, 0, len(ps))
	for _, p := range ps {
		js, err := p.JSON()
		if err != nil {
			t.Fatalf("policy %q: JSON: %v", p.Name, err)
		}
		again, err := Parse("roundtrip.json", js)
		if err != nil || len(again) != 1 {
			t.Fatalf("policy %q: its JSON does not parse back to one policy: %v\n%s", p.Name, err, js)
		}
		want, _ := json.Marshal(p)
		got, _ := json.Marshal(again[0])
		if !bytes.Equal(want, got) {
			t.Fatalf("policy %q changed in the round trip:\nbefore %s\nafter  %s\nvia    %s", p.Name, want, got, js)
		}
		back = append(back, again[0])
	}
	s2, err := Compile(back)
	if err != nil {
		t.Fatalf("the round-tripped policies do not compile: %v", err)
	}
	if s2.Revision() != s.Revision() {
		t.Fatalf("revision %s after the round trip, %s before", s2.Revision(), s.Revision())
	}
	for _, in := range probes(ps) {
		a, b := check(t, s, in), check(t, s2, in)
		checkDecision(t, s, &in, a)
		if a.Effect != b.Effect || a.Reason != b.Reason || a.Policy != b.Policy || a.Rule != b.Rule ||
			a.Message != b.Message || !slices.Equal(a.Limits, b.Limits) {
			t.Fatalf("the round-tripped set decides %+v differently:\nbefore %+v\nafter  %+v", in, a, b)
		}
	}
}

// TestParseSeedsCoverEveryField keeps FuzzParse's committed seeds
// meaningful: the seed-* files parse and compile (a seed that fails to
// parse tests only the error path), and together they use every field and
// every context operator, so the JSON round trip is checked on each.
func TestParseSeedsCoverEveryField(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "fuzz", "FuzzParse", "seed-*"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no seeds: %v", err)
	}
	used := map[string]bool{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.SplitN(strings.TrimSpace(string(b)), "\n", 2)
		doc, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")"))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		ps, err := Parse(f, []byte(doc))
		if err != nil {
			t.Fatalf("%s does not parse: %v", f, err)
		}
		s, err := Compile(ps)
		if err != nil {
			t.Fatalf("%s does not compile: %v", f, err)
		}
		checkJSONRoundTrip(t, ps, s)
		checkShadowInvisible(t, ps, s)
		for _, p := range ps {
			markFields(used, p)
		}
	}
	for _, f := range []string{
		"version", "mode.shadow", "description", "appliesTo.trustTiers", "appliesTo.tags", "appliesTo.agentIds",
		"rule.name", "rule.reason", "defaultEffect.allow", "defaultEffect.deny", "delegation.maxDepth",
		"delegation.permissionCeiling", "rateLimits.requestsPerMinute", "rateLimits.requestsPerHour",
		"resource.matches", "resource.startsWith", "resource.contains", "time.between", "time.timezone",
		"time.days", "delegated", "chain.root", "chain.includes", "rateLimit",
		"context.string", "context.number", "context.bool", "context.null", "in", "matches",
		"not_matches", "lt", "lte", "gt", "gte", "exists",
	} {
		if !used[f] {
			t.Errorf("no seed uses %s", f)
		}
	}
}

func markFields(used map[string]bool, p *Policy) {
	mark := func(f string, set bool) { used[f] = used[f] || set }
	mark("version", p.Version != "")
	mark("mode.shadow", p.Shadow())
	mark("description", p.Description != "")
	mark("appliesTo.trustTiers", len(p.AppliesTo.TrustTiers) > 0)
	mark("appliesTo.tags", len(p.AppliesTo.Tags) > 0)
	mark("appliesTo.agentIds", len(p.AppliesTo.AgentIDs) > 0)
	mark("defaultEffect."+string(p.DefaultEffect), true)
	if d := p.Delegation; d != nil {
		mark("delegation.maxDepth", d.MaxDepth > 0)
		mark("delegation.permissionCeiling", len(d.PermissionCeiling) > 0)
	}
	if rl := p.RateLimits; rl != nil {
		mark("rateLimits.requestsPerMinute", rl.RequestsPerMinute > 0)
		mark("rateLimits.requestsPerHour", rl.RequestsPerHour > 0)
	}
	for _, r := range p.Rules {
		mark("rule.name", !strings.HasPrefix(r.Name, "rule-"))
		mark("rule.reason", r.Reason != "")
		c := r.Conditions
		if c == nil {
			continue
		}
		if rc := c.Resource; rc != nil {
			mark("resource.matches", len(rc.Matches) > 0)
			mark("resource.startsWith", rc.StartsWith != "")
			mark("resource.contains", rc.Contains != "")
		}
		if tc := c.Time; tc != nil {
			mark("time.between", tc.Between != "")
			mark("time.timezone", tc.Timezone != "")
			mark("time.days", len(tc.Days) > 0)
		}
		mark("delegated", c.Delegated != nil)
		if ch := c.Chain; ch != nil {
			mark("chain.root", len(ch.Root) > 0)
			mark("chain.includes", len(ch.Includes) > 0)
		}
		mark("rateLimit", c.RateLimit != nil)
		for _, cc := range c.Context {
			if cc.Equals != nil {
				mark("context."+map[ValueKind]string{KindString: "string", KindNumber: "number", KindBool: "bool", KindNull: "null"}[cc.Equals.Kind], true)
			}
			mark("in", cc.In != nil)
			mark("matches", cc.Matches != nil)
			mark("not_matches", cc.NotMatches != nil)
			mark("lt", cc.Lt != nil)
			mark("lte", cc.Lte != nil)
			mark("gt", cc.Gt != nil)
			mark("gte", cc.Gte != nil)
			mark("exists", cc.Exists != nil)
		}
	}
}
