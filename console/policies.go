package console

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/meshguard/meshguard/internal/edge"
	"github.com/meshguard/meshguard/policy"
	"github.com/meshguard/meshguard/trust"
)

// Playground bounds. The form itself is bounded by maxFormBytes (the
// draft included).
const (
	maxPlaygroundField = 1024 // agent, tags, action, resource
	maxPlaygroundTags  = 64   // identity.MaxTags
)

// policyView is one policy of the set in force.
type policyView struct {
	Name, Mode, AppliesTo, Default, Source string
	Rules                                  []ruleView
}

type ruleView struct {
	Name, Effect, Actions string
}

// playground is the playground form, as given, and its answer.
type playground struct {
	Source, Draft, Agent, Tier, Tags, Action, Resource, Context string
	Tiers                                                       []string
	Problem                                                     string
	Decision                                                    *policy.Decision
	Revision                                                    string
}

// policiesData is the policies page.
type policiesData struct {
	Revision   string
	Policies   []policyView
	LoadErrors []string
	Play       playground
}

// policies is GET /ui/policies: the set in force, the errors of the last
// reload attempt, and an empty playground.
func (c *Console) policies(w http.ResponseWriter, r *http.Request) {
	c.renderPolicies(w, r, http.StatusOK, playground{Source: "live", Tier: trust.Verified.String()})
}

// playground is POST /ui/policies/playground: one request decided by the
// live set or a draft, with the explanation `policy test --verbose` gives.
// Nothing is stored, audited or counted.
func (c *Console) playground(w http.ResponseWriter, r *http.Request) {
	f := r.PostForm
	p := playground{Source: f.Get("source"), Draft: f.Get("draft"), Agent: f.Get("agent"), Tier: f.Get("tier"),
		Tags: f.Get("tags"), Action: f.Get("action"), Resource: f.Get("resource"), Context: f.Get("context")}
	set, in, err := c.playInput(&p)
	if err != nil {
		p.Problem = err.Error()
		c.renderPolicies(w, r, http.StatusBadRequest, p)
		return
	}
	// Shadow policies decide as if enforcing, as `policy test` does
	// (policy.RunTests): the set once they are promoted.
	d := set.Candidate().Evaluate(&in)
	p.Decision, p.Revision = &d, set.Revision()
	c.renderPolicies(w, r, http.StatusOK, p)
}

// errPlayground: a playground form the console cannot decide.
var errPlayground = errors.New("playground")

// playInput reads the form into the set to decide by and the request.
func (c *Console) playInput(p *playground) (*policy.Set, policy.Input, error) {
	bad := func(format string, args ...any) (*policy.Set, policy.Input, error) {
		return nil, policy.Input{}, fmt.Errorf("%w: "+format, append([]any{errPlayground}, args...)...)
	}
	for _, fld := range []struct{ name, v string }{{"agent", p.Agent}, {"tags", p.Tags}, {"action", p.Action}, {"resource", p.Resource}} {
		if err := edge.CheckText(fld.v, maxPlaygroundField); err != nil {
			return bad("%s: %v", fld.name, err)
		}
	}
	tier, err := trust.Parse(p.Tier)
	if err != nil {
		return bad("tier: %v", err)
	}
	in := policy.Input{Agent: policy.Subject{ID: p.Agent, Name: p.Agent, Tier: tier, Active: true},
		Action: p.Action, Resource: p.Resource, Time: c.cfg.Now(), Explain: true}
	switch {
	case p.Agent == "":
		return bad("agent: required (the name the policies' agentIds may match)")
	case p.Action == "":
		return bad("action: required (verb:resource)")
	case !strings.Contains(p.Action, ":") || strings.ContainsAny(p.Action, " \t\r\n"):
		return bad("action: %q: expected verb:resource without whitespace", p.Action)
	}
	for _, t := range strings.Split(p.Tags, ",") {
		if t = strings.TrimSpace(t); t != "" {
			in.Agent.Tags = append(in.Agent.Tags, t)
		}
	}
	if len(in.Agent.Tags) > maxPlaygroundTags {
		return bad("tags: more than %d", maxPlaygroundTags)
	}
	if strings.TrimSpace(p.Context) != "" {
		dec := json.NewDecoder(strings.NewReader(p.Context))
		dec.UseNumber()
		if err := dec.Decode(&in.Context); err != nil || in.Context == nil || dec.More() {
			return bad(`context: expected a JSON object such as {"recipient":"a@example.com"}`)
		}
	}
	switch p.Source {
	case "live":
		set := c.cfg.Policies.Current()
		if set == nil {
			return bad("no policy set is loaded")
		}
		return set, in, nil
	case "draft":
		if strings.TrimSpace(p.Draft) == "" {
			return bad("draft: empty (paste policy YAML, or decide by the live set)")
		}
		ps, err := policy.Parse("draft.yaml", []byte(p.Draft))
		if err != nil {
			return bad("the draft does not load:\n%v", err)
		}
		set, err := policy.Compile(ps)
		if err != nil {
			return bad("the draft does not load:\n%v", err)
		}
		return set, in, nil
	}
	return bad("source: expected live or draft")
}

func (c *Console) renderPolicies(w http.ResponseWriter, r *http.Request, status int, p playground) {
	set := c.cfg.Policies.Current()
	d := policiesData{Play: p}
	d.Play.Tiers = trust.Names()
	if set != nil {
		d.Revision = set.Revision()
		for _, pol := range set.Policies() {
			d.Policies = append(d.Policies, viewPolicy(pol))
		}
	}
	// The last reload attempt's errors: the set above stayed in force.
	var list policy.ErrorList
	switch err := c.cfg.Policies.Err(); {
	case errors.As(err, &list):
		for _, e := range list {
			d.LoadErrors = append(d.LoadErrors, e.Error())
		}
	case err != nil:
		d.LoadErrors = []string{err.Error()}
	}
	c.render(w, r, status, "policies", view{Title: "Policies", Active: "policies", Data: d})
}

func viewPolicy(p *policy.Policy) policyView {
	v := policyView{Name: p.Name, Mode: policy.ModeEnforce, Default: string(p.DefaultEffect), Source: p.Source.File}
	if p.Shadow() {
		v.Mode = policy.ModeShadow
	}
	if p.Source.Line > 0 {
		v.Source += fmt.Sprintf(":%d", p.Source.Line)
	}
	var b bytes.Buffer
	a := p.AppliesTo
	if a.Empty() {
		b.WriteString("every agent")
	}
	sep := ""
	if len(a.TrustTiers) > 0 {
		tiers := make([]string, len(a.TrustTiers))
		for i, t := range a.TrustTiers {
			tiers[i] = t.String()
		}
		fmt.Fprintf(&b, "tiers %s", strings.Join(tiers, ", "))
		sep = "; "
	}
	if len(a.Tags) > 0 {
		fmt.Fprintf(&b, "%stags %s", sep, strings.Join(a.Tags, ", "))
		sep = "; "
	}
	if len(a.AgentIDs) > 0 {
		fmt.Fprintf(&b, "%sagents %s", sep, strings.Join(a.AgentIDs, ", "))
	}
	v.AppliesTo = b.String()
	for _, r := range p.Rules {
		v.Rules = append(v.Rules, ruleView{Name: r.Name, Effect: string(r.Effect), Actions: strings.Join(r.Actions, " ")})
	}
	return v
}
