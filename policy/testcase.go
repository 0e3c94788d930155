package policy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/meshguard/meshguard/api"
	"github.com/meshguard/meshguard/trust"
)

// Directory resolves the agents named by offline test cases, by id or name.
type Directory struct {
	agents []Subject
	byKey  map[string]int
}

// NewDirectory indexes agents by id and by name.
func NewDirectory(agents []Subject) *Directory {
	d := &Directory{agents: agents, byKey: make(map[string]int, 2*len(agents))}
	for i, a := range agents {
		d.byKey[a.ID] = i
		if a.Name != "" {
			d.byKey[a.Name] = i
		}
	}
	return d
}

// Lookup finds an agent by id or name.
func (d *Directory) Lookup(key string) (Subject, bool) {
	i, ok := d.byKey[key]
	if !ok {
		return Subject{}, false
	}
	return d.agents[i], true
}

// ParseAgents reads an agents file for offline tests:
// `agents: [{id, name, trustTier, tags, status}]`. id defaults to the name;
// status defaults to active.
func ParseAgents(file string, data []byte) (*Directory, error) {
	entries, err := ParseAgentEntries(file, data)
	if err != nil {
		return nil, err
	}
	agents := make([]Subject, len(entries))
	for i, e := range entries {
		agents[i] = e.Subject
	}
	return NewDirectory(agents), nil
}

// AgentEntry is one agent of an agents file and the line it starts on, so
// a caller that checks more than the parser does (meshguard agent apply)
// can name the place.
type AgentEntry struct {
	Subject
	Line int
}

// ParseAgentEntries reads an agents file (the format of ParseAgents) and
// returns its agents in file order: the one parser of that format.
func ParseAgentEntries(file string, data []byte) ([]AgentEntry, error) {
	d := &decoder{file: file}
	root := d.document(data)
	var agents []AgentEntry
	seen := map[string]int{}
	if root != nil {
		d.fields(root, "", []string{"agents"}, func(_ string, v *yaml.Node) {
			if v.Kind != yaml.SequenceNode {
				d.fail(v, "agents", "expected a list of agents, got %s", kindName(v))
				return
			}
			for i, n := range v.Content {
				a, ok := d.agent(n, index("agents", i))
				if !ok {
					continue
				}
				for _, key := range []string{a.ID, a.Name} {
					if j, dup := seen[key]; dup && key != "" && j != i {
						d.fail(n, index("agents", i), "agent %q is defined twice (also agents[%d])", key, j)
					}
					seen[key] = i
				}
				agents = append(agents, AgentEntry{Subject: a, Line: n.Line})
			}
		})
	}
	if err := d.errs.err(); err != nil {
		return nil, err
	}
	return agents, nil
}

func (d *decoder) agent(n *yaml.Node, field string) (Subject, bool) {
	before := len(d.errs)
	a := Subject{Active: true}
	haveTier := false
	d.fields(n, field, []string{"id", "name", "trustTier", "tags", "status"}, func(k string, v *yaml.Node) {
		f := join(field, k)
		switch k {
		case "id":
			a.ID = d.bounded(v, f)
		case "name":
			a.Name = d.bounded(v, f)
		case "trustTier":
			haveTier = true
			if s, ok := d.str(v, f); ok {
				t, err := trust.Parse(s)
				if err != nil {
					d.fail(v, f, "%v", err)
				}
				a.Tier = t
			}
		case "tags":
			a.Tags = d.nonEmptyList(v, f)
		case "status":
			if s, ok := d.str(v, f); ok {
				switch s {
				case "active":
				case "revoked":
					a.Active = false
				default:
					d.fail(v, f, "%q: expected active or revoked", s)
				}
			}
		}
	})
	if n.Kind == yaml.MappingNode {
		if a.ID == "" && a.Name == "" {
			d.fail(n, field, "needs an id or a name")
		}
		if !haveTier {
			d.fail(n, join(field, "trustTier"), "missing (expected one of %s)", "untrusted, verified, trusted, privileged")
		}
	}
	if a.ID == "" {
		a.ID = a.Name
	}
	return a, len(d.errs) == before
}

// document decodes a single-document YAML file.
func (d *decoder) document(data []byte) *yaml.Node {
	if len(data) > MaxFileBytes {
		d.fail(nil, "", "file is %d bytes, larger than the %d-byte limit", len(data), MaxFileBytes)
		return nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var root yaml.Node
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			d.fail(nil, "", "empty file")
		} else {
			d.errs = append(d.errs, syntaxError(d.file, err))
		}
		return nil
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		d.fail(&extra, "", "expected one YAML document, found more")
		return nil
	}
	if !d.refuseAliases(root.Content[0]) {
		return nil
	}
	return root.Content[0]
}

// maxContextDepth bounds nesting in a test case's context.
const maxContextDepth = 32

// jsonValue converts a YAML node to what encoding/json would give for the
// same data (map[string]any, []any, string, float64, bool, nil), so a test
// case's context behaves as the JSON an SDK sends. Scalars follow the policy
// file's rules; a YAML timestamp stays the string it was written as.
func (d *decoder) jsonValue(n *yaml.Node, field string, depth int) (any, bool) {
	if depth > maxContextDepth {
		d.fail(n, field, "nested more than %d levels", maxContextDepth)
		return nil, false
	}
	switch n.Kind {
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		ok := d.fields(n, field, nil, func(k string, v *yaml.Node) {
			if val, good := d.jsonValue(v, join(field, k), depth+1); good {
				m[k] = val
			}
		})
		return m, ok
	case yaml.SequenceNode:
		list := make([]any, 0, len(n.Content))
		for i, c := range n.Content {
			val, ok := d.jsonValue(c, index(field, i), depth+1)
			if !ok {
				return nil, false
			}
			list = append(list, val)
		}
		return list, true
	}
	if n.Tag == "!!timestamp" {
		return n.Value, true
	}
	v, ok := d.scalarValue(n, field)
	switch v.Kind {
	case KindString:
		return v.Str, ok
	case KindNumber:
		return v.Num, ok
	case KindBool:
		return v.Bool, ok
	}
	return nil, ok
}

// Case is one offline test case.
type Case struct {
	Name   string
	Input  Input
	Expect Effect
	Reason string // optional expected reason code (expectReason)
	Line   int
}

var caseKeys = []string{"name", "agent", "action", "resource", "context", "chain", "at", "expect", "expectReason"}

// ParseTests reads a tests file (`tests: [{name, agent, action, resource,
// context, chain, at, expect, expectReason}]`), resolving agents through dir.
func ParseTests(file string, data []byte, dir *Directory) ([]Case, error) {
	d := &decoder{file: file}
	root := d.document(data)
	var cases []Case
	if root != nil {
		d.fields(root, "", []string{"tests"}, func(_ string, v *yaml.Node) {
			if v.Kind != yaml.SequenceNode {
				d.fail(v, "tests", "expected a list of test cases, got %s", kindName(v))
				return
			}
			if len(v.Content) == 0 {
				d.fail(v, "tests", "no test cases (a suite that tests nothing would always pass)")
			}
			names := map[string]int{}
			for i, n := range v.Content {
				c := d.testCase(n, index("tests", i), i, dir)
				if first, dup := names[c.Name]; dup {
					d.fail(n, index("tests", i)+".name", "duplicate test name %q (first used by tests[%d])", c.Name, first)
				}
				names[c.Name] = i
				cases = append(cases, c)
			}
		})
	}
	if err := d.errs.err(); err != nil {
		return nil, err
	}
	return cases, nil
}

func (d *decoder) testCase(n *yaml.Node, field string, i int, dir *Directory) Case {
	c := Case{Name: fmt.Sprintf("case-%d", i+1), Line: n.Line}
	var haveAgent, haveAction, haveExpect bool
	resolveAgent := func(v *yaml.Node, f string) (Subject, bool) {
		key, ok := d.str(v, f)
		if !ok {
			return Subject{}, false
		}
		a, found := dir.Lookup(key)
		if !found {
			d.fail(v, f, "unknown agent %q (not in the agents file)", key)
		}
		return a, found
	}
	d.fields(n, field, caseKeys, func(k string, v *yaml.Node) {
		f := join(field, k)
		switch k {
		case "name":
			c.Name = d.bounded(v, f)
		case "agent":
			c.Input.Agent, _ = resolveAgent(v, f)
			haveAgent = true
		case "action":
			c.Input.Action = d.bounded(v, f)
			haveAction = true
		case "resource":
			c.Input.Resource, _ = d.str(v, f)
		case "context":
			if v.Kind != yaml.MappingNode {
				d.fail(v, f, "expected a mapping, got %s", kindName(v))
				return
			}
			if m, ok := d.jsonValue(v, f, 0); ok {
				c.Input.Context = m.(map[string]any)
			}
		case "chain":
			if v.Kind != yaml.SequenceNode {
				d.fail(v, f, "expected a list of agents (root first), got %s", kindName(v))
				return
			}
			for j, e := range v.Content {
				if a, ok := resolveAgent(e, index(f, j)); ok {
					c.Input.Chain = append(c.Input.Chain, a)
				}
			}
		case "at":
			// Unquoted, YAML reads an RFC 3339 time as a timestamp; both
			// spellings mean the same here.
			if v.Kind == yaml.ScalarNode && (v.Tag == "!!str" || v.Tag == "!!timestamp") {
				t, err := time.Parse(time.RFC3339, v.Value)
				if err != nil {
					d.fail(v, f, "%q: expected an RFC 3339 time such as 2026-01-05T10:00:00Z", v.Value)
				}
				c.Input.Time = t
			} else {
				d.fail(v, f, "expected an RFC 3339 time such as 2026-01-05T10:00:00Z, got %s", kindName(v))
			}
		case "expect":
			haveExpect = true
			c.Expect = d.effect(v, f, true)
		case "expectReason":
			c.Reason = d.bounded(v, f)
		}
	})
	if n.Kind == yaml.MappingNode {
		for _, m := range []struct {
			have bool
			key  string
		}{{haveAgent, "agent"}, {haveAction, "action"}, {haveExpect, "expect"}} {
			if !m.have {
				d.fail(n, join(field, m.key), "missing")
			}
		}
	}
	return c
}

// Result is the outcome of one case, in the JSON shape of docs/cli.md.
type Result struct {
	Name     string `json:"name"`
	Passed   bool   `json:"passed"`
	Decision Effect `json:"decision"`
	Expected Effect `json:"expected"`
	Policy   string `json:"policy"`
	Rule     string `json:"rule"`
	Reason   string `json:"reason"`
	// ExpectedReason is the case's expectReason, when it set one.
	ExpectedReason string   `json:"expectedReason,omitempty"`
	Message        string   `json:"message,omitempty"`
	Detail         Decision `json:"-"` // the whole decision, for --verbose
}

// Summary counts results.
type Summary = api.TestSummary

// Report is a whole test run (`meshguard policy test --file … --json`).
type Report struct {
	Summary Summary  `json:"summary"`
	Results []Result `json:"results"`
}

// RunTests evaluates every case. When now is non-zero it stands in for the
// time of cases without `at`, so one run sees one clock. Shadow policies
// decide as if enforcing: the cases describe the set as it will be once
// they are promoted (docs/governance.md).
func RunTests(set *Set, cases []Case, now time.Time, explain bool) Report {
	set = set.Candidate()
	r := Report{Results: make([]Result, 0, len(cases))}
	for _, c := range cases {
		in := c.Input
		if in.Time.IsZero() {
			in.Time = now
		}
		in.Explain = explain
		dec := set.Evaluate(&in)
		res := Result{Name: c.Name, Decision: dec.Effect, Expected: c.Expect, Policy: dec.Policy,
			Rule: dec.Rule, Reason: dec.Reason, ExpectedReason: c.Reason, Message: dec.Message, Detail: dec}
		res.Passed = dec.Effect == c.Expect && (c.Reason == "" || c.Reason == dec.Reason)
		if res.Passed {
			r.Summary.Passed++
		} else {
			r.Summary.Failed++
		}
		r.Results = append(r.Results, res)
	}
	r.Summary.Total = len(cases)
	return r
}
