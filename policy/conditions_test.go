package policy

import (
	"encoding/json"
	"testing"

	"github.com/meshguard/meshguard/trust"
)

// ruleWith returns a one-rule policy allowing act:* under the given
// conditions (YAML flow mapping), default deny.
func ruleWith(cond string) string {
	return "name: p\nrules:\n  - name: r\n    effect: allow\n    actions: ['act:*']\n    conditions: " + cond + "\n"
}

func TestResourceConditions(t *testing.T) {
	tests := []struct {
		cond, resource string
		match          bool
	}{
		{`{resource: {matches: "/files/*.pdf"}}`, "/files/a.pdf", true},
		{`{resource: {matches: "/files/*.pdf"}}`, "/files/a.doc", false},
		{`{resource: {matches: ["/a/*", "/b/*"]}}`, "/b/x", true},
		{`{resource: {matches: ["/a/*", "/b/*"]}}`, "/c/x", false},
		{`{resource: {startsWith: "/api/"}}`, "/api/users", true},
		{`{resource: {startsWith: "/api/"}}`, "/apix", false},
		{`{resource: {contains: "secret"}}`, "/top-secret/x", true},
		{`{resource: {contains: "secret"}}`, "/public", false},
		{`{resource: {startsWith: "/api/", contains: "admin"}}`, "/api/admin", true},
		{`{resource: {startsWith: "/api/", contains: "admin"}}`, "/api/users", false},
		{`{resource: {matches: "*"}}`, "", true},
	}
	for _, tc := range tests {
		t.Run(tc.cond+" "+tc.resource, func(t *testing.T) {
			s := mustSet(t, ruleWith(tc.cond))
			d := check(t, s, Input{Agent: agent("a", trust.Verified), Action: "act:x", Resource: tc.resource})
			if d.Allowed() != tc.match {
				t.Fatalf("allowed = %v, want %v (%s)", d.Allowed(), tc.match, d.Message)
			}
		})
	}
}

func TestContextConditions(t *testing.T) {
	tests := []struct {
		name string
		cond string
		ctx  string // JSON, "" = no context
		want bool
	}{
		{"literal string equal", `{context: {env: prod}}`, `{"env":"prod"}`, true},
		{"literal string differs", `{context: {env: prod}}`, `{"env":"dev"}`, false},
		{"literal absent", `{context: {env: prod}}`, ``, false},
		{"literal number equals JSON float", `{context: {n: 5}}`, `{"n":5.0}`, true},
		{"literal number vs string", `{context: {n: 5}}`, `{"n":"5"}`, false},
		{"literal bool", `{context: {urgent: true}}`, `{"urgent":true}`, true},
		{"literal null", `{context: {x: null}}`, `{"x":null}`, true},
		{"in member", `{context: {region: {in: [eu, us]}}}`, `{"region":"eu"}`, true},
		{"in non-member", `{context: {region: {in: [eu, us]}}}`, `{"region":"ap"}`, false},
		{"in mixed kinds", `{context: {code: {in: [1, "two"]}}}`, `{"code":1}`, true},
		{"in absent", `{context: {region: {in: [eu]}}}`, `{}`, false},
		{"matches", `{context: {to: {matches: "*@example.com"}}}`, `{"to":"a@example.com"}`, true},
		{"matches fails", `{context: {to: {matches: "*@example.com"}}}`, `{"to":"a@evil.test"}`, false},
		{"matches absent", `{context: {to: {matches: "*"}}}`, `{}`, false},
		{"matches a number never", `{context: {to: {matches: "*"}}}`, `{"to":1}`, false},
		{"not_matches", `{context: {to: {not_matches: "*@example.com"}}}`, `{"to":"a@evil.test"}`, true},
		{"not_matches fails", `{context: {to: {not_matches: "*@example.com"}}}`, `{"to":"a@example.com"}`, false},
		{"not_matches absent holds", `{context: {to: {not_matches: "*@example.com"}}}`, ``, true},
		{"not_matches on a number holds", `{context: {to: {not_matches: "*"}}}`, `{"to":3}`, true},
		{"lt", `{context: {amount: {lt: 100}}}`, `{"amount":99.5}`, true},
		{"lt boundary", `{context: {amount: {lt: 100}}}`, `{"amount":100}`, false},
		{"lte boundary", `{context: {amount: {lte: 100}}}`, `{"amount":100}`, true},
		{"gt", `{context: {amount: {gt: 100}}}`, `{"amount":100.01}`, true},
		{"gt boundary", `{context: {amount: {gt: 100}}}`, `{"amount":100}`, false},
		{"gte boundary", `{context: {amount: {gte: 100}}}`, `{"amount":100}`, true},
		{"range", `{context: {amount: {gte: 10, lt: 20}}}`, `{"amount":15}`, true},
		{"range outside", `{context: {amount: {gte: 10, lt: 20}}}`, `{"amount":20}`, false},
		{"numeric op on a number written as text", `{context: {amount: {lt: 100}}}`, `{"amount":"5"}`, true},
		{"numeric op on text out of range", `{context: {amount: {lt: 100}}}`, `{"amount":"500"}`, false},
		{"numeric op on an exponent", `{context: {amount: {lt: 1000}}}`, `{"amount":"-1.5e2"}`, true},
		{"numeric op on words", `{context: {amount: {lt: 100}}}`, `{"amount":"five"}`, false},
		{"numeric op on hex", `{context: {amount: {lt: 100}}}`, `{"amount":"0x5"}`, false},
		{"numeric op on a plus sign", `{context: {amount: {lt: 100}}}`, `{"amount":"+5"}`, false},
		{"numeric op on spaces", `{context: {amount: {lt: 100}}}`, `{"amount":" 5"}`, false},
		{"numeric op on a leading zero", `{context: {amount: {lt: 100}}}`, `{"amount":"05"}`, false},
		{"numeric op on a bare dot", `{context: {amount: {lt: 100}}}`, `{"amount":"5."}`, false},
		{"numeric op on Inf", `{context: {amount: {lt: 100}}}`, `{"amount":"-Inf"}`, false},
		{"numeric op on NaN", `{context: {amount: {lt: 100}}}`, `{"amount":"NaN"}`, false},
		{"numeric op absent", `{context: {amount: {lt: 100}}}`, ``, false},
		{"exists true present", `{context: {ticket: {exists: true}}}`, `{"ticket":"T-1"}`, true},
		{"exists true present null", `{context: {ticket: {exists: true}}}`, `{"ticket":null}`, true},
		{"exists true absent", `{context: {ticket: {exists: true}}}`, `{}`, false},
		{"exists false absent", `{context: {ticket: {exists: false}}}`, ``, true},
		{"exists false present", `{context: {ticket: {exists: false}}}`, `{"ticket":"x"}`, false},
		{"several keys all hold", `{context: {env: prod, amount: {lt: 5}}}`, `{"env":"prod","amount":1}`, true},
		{"several keys one fails", `{context: {env: prod, amount: {lt: 5}}}`, `{"env":"prod","amount":9}`, false},
		{"object value equals no literal", `{context: {x: a}}`, `{"x":{"a":1}}`, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := mustSet(t, ruleWith(tc.cond))
			var ctx map[string]any
			if tc.ctx != "" {
				if err := json.Unmarshal([]byte(tc.ctx), &ctx); err != nil {
					t.Fatal(err)
				}
			}
			d := check(t, s, Input{Agent: agent("a", trust.Verified), Action: "act:x", Context: ctx})
			if d.Allowed() != tc.want {
				t.Fatalf("matched = %v, want %v (%s)", d.Allowed(), tc.want, d.Message)
			}
		})
	}
}

func TestTimeConditions(t *testing.T) {
	tests := []struct {
		name, cond, at string
		want           bool
	}{
		{"inside, UTC default", `{time: {between: "09:00-18:00"}}`, "2026-03-02T12:00:00Z", true},
		{"start inclusive", `{time: {between: "09:00-18:00"}}`, "2026-03-02T09:00:00Z", true},
		{"end exclusive", `{time: {between: "09:00-18:00"}}`, "2026-03-02T18:00:00Z", false},
		{"last minute", `{time: {between: "09:00-18:00"}}`, "2026-03-02T17:59:59Z", true},
		{"before", `{time: {between: "09:00-18:00"}}`, "2026-03-02T08:59:59Z", false},
		// 07:30 UTC is 08:30 in Berlin in winter (CET), 09:30 in summer (CEST).
		{"timezone winter", `{time: {between: "09:00-18:00", timezone: "Europe/Berlin"}}`, "2026-01-05T07:30:00Z", false},
		{"timezone summer", `{time: {between: "09:00-18:00", timezone: "Europe/Berlin"}}`, "2026-07-06T07:30:00Z", true},
		{"wrap late", `{time: {between: "22:00-06:00"}}`, "2026-03-02T23:00:00Z", true},
		{"wrap early", `{time: {between: "22:00-06:00"}}`, "2026-03-02T05:59:00Z", true},
		{"wrap end exclusive", `{time: {between: "22:00-06:00"}}`, "2026-03-02T06:00:00Z", false},
		{"wrap midday", `{time: {between: "22:00-06:00"}}`, "2026-03-02T12:00:00Z", false},
		{"end 24:00", `{time: {between: "20:00-24:00"}}`, "2026-03-02T23:59:00Z", true},
		// 2026-03-02 is a Monday.
		{"days match", `{time: {days: [mon, tue]}}`, "2026-03-02T12:00:00Z", true},
		{"days miss", `{time: {days: [sat, sun]}}`, "2026-03-02T12:00:00Z", false},
		// Sunday 23:30 UTC is Monday 00:30 in Berlin: the day is read there.
		{"day read in the timezone", `{time: {days: [mon], timezone: "Europe/Berlin"}}`, "2026-03-01T23:30:00Z", true},
		// A wrapping window belongs to the day it starts. 2026-03-06 is a Friday.
		{"wrap and days: Friday night", `{time: {between: "22:00-06:00", days: [fri]}}`, "2026-03-06T23:00:00Z", true},
		{"wrap and days: Friday's shift on Saturday morning", `{time: {between: "22:00-06:00", days: [fri]}}`, "2026-03-07T01:00:00Z", true},
		{"wrap and days: Friday morning is Thursday's shift", `{time: {between: "22:00-06:00", days: [fri]}}`, "2026-03-06T01:00:00Z", false},
		{"wrap and days: Saturday night", `{time: {between: "22:00-06:00", days: [fri]}}`, "2026-03-07T23:00:00Z", false},
		{"window and days", `{time: {between: "09:00-17:00", days: [mon, tue, wed, thu, fri], timezone: "America/New_York"}}`, "2026-03-02T15:00:00Z", true},
		{"window and days, weekend", `{time: {between: "09:00-17:00", days: [mon, tue, wed, thu, fri], timezone: "America/New_York"}}`, "2026-03-07T15:00:00Z", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := mustSet(t, ruleWith(tc.cond))
			d := check(t, s, Input{Agent: agent("a", trust.Verified), Action: "act:x", Time: at(tc.at)})
			if d.Allowed() != tc.want {
				t.Fatalf("matched = %v, want %v", d.Allowed(), tc.want)
			}
		})
	}
}

func TestDelegatedAndChainConditions(t *testing.T) {
	root := agent("orchestrator", trust.Trusted)
	mid := agent("researcher", trust.Verified)
	actor := agent("emailer", trust.Verified)
	// The actor's policy alone (no delegation blocks needed: this tests the
	// conditions, so every agent may delegate freely).
	open := "name: zz-delegation\ndelegation: {maxDepth: 5}\ndefaultEffect: allow"
	tests := []struct {
		name  string
		cond  string
		chain []Subject
		want  bool
	}{
		{"delegated true on a chain", `{delegated: true}`, []Subject{root}, true},
		{"delegated true alone", `{delegated: true}`, nil, false},
		{"delegated false alone", `{delegated: false}`, nil, true},
		{"delegated false on a chain", `{delegated: false}`, []Subject{root}, false},
		{"root by name", `{chain: {root: [orchestrator]}}`, []Subject{root, mid}, true},
		{"root by id glob", `{chain: {root: ["agent_orch*"]}}`, []Subject{root, mid}, true},
		{"root mismatch", `{chain: {root: [researcher]}}`, []Subject{root, mid}, false},
		{"an agent acting alone is its own root", `{chain: {root: [emailer]}}`, nil, true},
		{"includes middle", `{chain: {includes: [researcher]}}`, []Subject{root, mid}, true},
		{"includes root", `{chain: {includes: ["orch*"]}}`, []Subject{root, mid}, true},
		{"includes never the actor", `{chain: {includes: [emailer]}}`, []Subject{root, mid}, false},
		{"includes on no chain", `{chain: {includes: ["*"]}}`, nil, false},
		{"root and includes both", `{chain: {root: [orchestrator], includes: [researcher]}}`, []Subject{root, mid}, true},
		{"root and includes, one fails", `{chain: {root: [orchestrator], includes: [nobody]}}`, []Subject{root, mid}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pol := "name: p\nappliesTo: {agentIds: [emailer]}\nrules:\n  - {name: r, effect: allow, actions: ['act:*'], conditions: " + tc.cond + "}\n"
			s := mustSet(t, pol, open)
			d := check(t, s, Input{Agent: actor, Action: "act:x", Chain: tc.chain})
			if d.Allowed() != tc.want {
				t.Fatalf("allowed = %v, want %v: %s %s", d.Allowed(), tc.want, d.Reason, d.Message)
			}
		})
	}
}
