package policy

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want string // substring of the error, which always starts with "bad.yaml:LINE: "
		line int
	}{
		{"unknown top-level key", "name: p\nrulez: []", "rulez: unknown key (expected one of name, version", 2},
		{"unknown rule key", "name: p\nrules:\n  - effect: allow\n    actions: ['a:b']\n    efect: deny", "rules[0].efect: unknown key", 5},
		{"unknown condition key", "name: p\nrules:\n  - {effect: allow, actions: ['a:b'], conditions: {ip: x}}", "rules[0].conditions.ip: unknown key", 3},
		{"unknown context operator", "name: p\nrules:\n  - {effect: allow, actions: ['a:b'], conditions: {context: {x: {like: y}}}}", "rules[0].conditions.context.x.like: unknown key (expected one of in, matches", 3},
		{"a steering header as context", "name: p\nrules:\n  - {effect: allow, actions: ['a:b'], conditions: {context: {header.x-meshguard-action: read}}}",
			"context.header.x-meshguard-action: MeshGuard's own headers are not request context: where MeshGuard sees the real request the action comes from the route", 3},
		{"the old context header by name", "name: p\nrules:\n  - {effect: allow, actions: ['a:b'], conditions: {context: {X-MeshGuard-Context: x}}}",
			"X-MeshGuard-* headers are not context: read the request's own headers (header.<name>)", 3},
		{"a credential as context", "name: p\nrules:\n  - {effect: allow, actions: ['a:b'], conditions: {context: {header.Authorization: {exists: true}}}}",
			"header.authorization is a credential", 3},
		{"a cookie as context", "name: p\nrules:\n  - {effect: allow, actions: ['a:b'], conditions: {context: {header.cookie: {exists: true}}}}",
			"header.cookie is a credential", 3},
		{"a hop-by-hop header as context", "name: p\nrules:\n  - {effect: allow, actions: ['a:b'], conditions: {context: {header.te: trailers}}}",
			"header.te is hop-by-hop", 3},
		{"Connection as context", "name: p\nrules:\n  - {effect: allow, actions: ['a:b'], conditions: {context: {header.connection: close}}}",
			"header.connection is hop-by-hop", 3},
		{"Upgrade as context", "name: p\nrules:\n  - {effect: allow, actions: ['a:b'], conditions: {context: {header.upgrade: websocket}}}",
			"header.upgrade is hop-by-hop", 3},
		{"a hop-by-hop header with '_'", "name: p\nrules:\n  - {effect: allow, actions: ['a:b'], conditions: {context: {header.transfer_encoding: chunked}}}",
			"header.transfer-encoding is hop-by-hop", 3},
		{"a credential with '_'", "name: p\nrules:\n  - {effect: allow, actions: ['a:b'], conditions: {context: {header.proxy_authorization: {exists: true}}}}",
			"header.proxy-authorization is a credential", 3},
		{"a MeshGuard header with '_'", "name: p\nrules:\n  - {effect: allow, actions: ['a:b'], conditions: {context: {header.x_meshguard_context: x}}}",
			"MeshGuard's own headers are not request context", 3},
		{"an upper-case header name", "name: p\nrules:\n  - {effect: allow, actions: ['a:b'], conditions: {context: {header.X-Tenant: a}}}",
			"header names are read in lower case: write header.x-tenant", 3},
		{"the host as context", "name: p\nrules:\n  - {effect: allow, actions: ['a:b'], conditions: {context: {header.host: a}}}",
			"the host is not request context", 3},
		{"not a header name", "name: p\nrules:\n  - {effect: allow, actions: ['a:b'], conditions: {context: {'header.a b': a}}}",
			"not an HTTP header name", 3},
		{"a header without a name", "name: p\nrules:\n  - {effect: allow, actions: ['a:b'], conditions: {context: {header.: a}}}",
			"header. needs a header name", 3},
		{"a query parameter without a name", "name: p\nrules:\n  - {effect: allow, actions: ['a:b'], conditions: {context: {query.: a}}}",
			"query. needs a parameter name", 3},
		{"duplicate key", "name: p\nname: q", "name: duplicate key", 2},
		{"missing name", "rules: []", "name: missing", 1},
		{"name of the wrong type", "name: [a]", "name: expected a string, got a list", 1},
		{"bad policy name", "name: 'has space'", "expected 1-128 letters", 1},
		{"rules not a list", "name: p\nrules: {a: b}", "rules: expected a list of rules, got a mapping", 2},
		{"bad effect", "name: p\nrules:\n  - {effect: permit, actions: ['a:b']}", `rules[0].effect: "permit" is not an effect (expected allow, deny or approve)`, 3},
		{"default approve", "name: p\ndefaultEffect: approve", "defaultEffect: approve is not a default effect", 2},
		{"approvers on allow", "name: p\nrules:\n  - {effect: allow, actions: ['a:b'], approvers: [security]}", "rules[0].approvers: only an approve rule has this (the rule's effect is allow)", 3},
		{"ttl on deny", "name: p\nrules:\n  - {effect: deny, actions: ['a:b'], ttl: 1h}", "rules[0].ttl: only an approve rule has this (the rule's effect is deny)", 3},
		{"ttl too short", "name: p\nrules:\n  - {effect: approve, actions: ['a:b'], ttl: 30s}", `rules[0].ttl: "30s": expected a duration from 1m to 720h`, 3},
		{"ttl too long", "name: p\nrules:\n  - {effect: approve, actions: ['a:b'], ttl: 721h}", `rules[0].ttl: "721h": expected a duration`, 3},
		{"ttl in days", "name: p\nrules:\n  - {effect: approve, actions: ['a:b'], ttl: 2d}", `rules[0].ttl: "2d": expected a duration`, 3},
		{"ttl number", "name: p\nrules:\n  - {effect: approve, actions: ['a:b'], ttl: 60}", `rules[0].ttl: expected a string`, 3},
		{"empty approvers", "name: p\nrules:\n  - {effect: approve, actions: ['a:b'], approvers: []}", "rules[0].approvers: empty list", 3},
		{"bad approver", "name: p\nrules:\n  - {effect: approve, actions: ['a:b'], approvers: ['sec team']}", `rules[0].approvers[0]: "sec team": expected 1-128 letters`, 3},
		{"boolean effect", "name: p\nrules:\n  - {effect: true, actions: ['a:b']}", `rules[0].effect: expected a string, got "true"`, 3},
		{"bad default effect", "name: p\ndefaultEffect: maybe", `defaultEffect: "maybe" is not an effect`, 2},
		{"missing effect", "name: p\nrules:\n  - {actions: ['a:b']}", "rules[0].effect: missing", 3},
		{"missing actions", "name: p\nrules:\n  - {effect: allow}", "rules[0].actions: missing", 3},
		{"empty actions", "name: p\nrules:\n  - {effect: allow, actions: []}", "rules[0].actions: empty list", 3},
		{"empty action pattern", "name: p\nrules:\n  - {effect: allow, actions: ['']}", "rules[0].actions[0]: empty pattern", 3},
		{"action without verb", "name: p\nrules:\n  - {effect: allow, actions: ['read']}", `rules[0].actions[0]: "read": expected an action verb:resource`, 3},
		{"action with whitespace", "name: p\nrules:\n  - {effect: allow, actions: ['read: x']}", "patterns contain no whitespace", 3},
		{"action of the wrong type", "name: p\nrules:\n  - {effect: allow, actions: [1]}", `rules[0].actions[0]: expected a string, got "1"`, 3},
		{"action list as a string", "name: p\nrules:\n  - {effect: allow, actions: 'read:*'}", "rules[0].actions: expected a list of strings", 3},
		{"duplicate rule names", "name: p\nrules:\n  - {name: r, effect: allow, actions: ['a:b']}\n  - {name: r, effect: deny, actions: ['a:c']}", `rules[1].name: duplicate rule name "r" (first used by rules[0])`, 4},
		{"unknown tier", "name: p\nappliesTo: {trustTiers: [verified, admin]}", `appliesTo.trustTiers[1]: unknown tier "admin" (expected one of untrusted, verified, trusted, privileged)`, 2},
		{"tiers not a list", "name: p\nappliesTo: {trustTiers: verified}", "appliesTo.trustTiers: expected a list of strings", 2},
		{"bad time window", "name: p\nrules:\n  - {effect: allow, actions: ['a:b'], conditions: {time: {between: '9-5'}}}", `rules[0].conditions.time.between: "9-5": "9": expected a time HH:MM`, 3},
		{"hour out of range", "name: p\nrules:\n  - {effect: allow, actions: ['a:b'], conditions: {time: {between: '09:00-25:00'}}}", "expected a time from 00:00 to 23:59", 3},
		{"empty window", "name: p\nrules:\n  - {effect: allow, actions: ['a:b'], conditions: {time: {between: '09:00-09:00'}}}", "window is empty", 3},
		{"bad timezone", "name: p\nrules:\n  - {effect: allow, actions: ['a:b'], conditions: {time: {between: '09:00-17:00', timezone: Mars/Olympus}}}", `rules[0].conditions.time.timezone: unknown timezone "Mars/Olympus"`, 3},
		{"Local timezone", "name: p\nrules:\n  - {effect: allow, actions: ['a:b'], conditions: {time: {days: [mon], timezone: Local}}}", "depends on the machine", 3},
		{"bad day", "name: p\nrules:\n  - {effect: allow, actions: ['a:b'], conditions: {time: {days: [monday]}}}", `rules[0].conditions.time.days[0]: "monday" is not a day`, 3},
		{"time without window or days", "name: p\nrules:\n  - {effect: allow, actions: ['a:b'], conditions: {time: {timezone: UTC}}}", "needs between and/or days", 3},
		{"context list literal", "name: p\nrules:\n  - {effect: allow, actions: ['a:b'], conditions: {context: {x: [1, 2]}}}", "for a list of values use {in: [...]}", 3},
		{"context number op with a string", "name: p\nrules:\n  - {effect: allow, actions: ['a:b'], conditions: {context: {x: {lt: ten}}}}", `context.x.lt: expected a number, got "ten"`, 3},
		{"context exists not bool", "name: p\nrules:\n  - {effect: allow, actions: ['a:b'], conditions: {context: {x: {exists: yes}}}}", "context.x.exists: expected true or false", 3},
		{"empty in", "name: p\nrules:\n  - {effect: allow, actions: ['a:b'], conditions: {context: {x: {in: []}}}}", "context.x.in: expected a non-empty list", 3},
		{"delegated not bool", "name: p\nrules:\n  - {effect: allow, actions: ['a:b'], conditions: {delegated: 1}}", "conditions.delegated: expected true or false", 3},
		{"empty chain condition", "name: p\nrules:\n  - {effect: allow, actions: ['a:b'], conditions: {chain: {}}}", "needs root and/or includes", 3},
		{"empty resource condition", "name: p\nrules:\n  - {effect: allow, actions: ['a:b'], conditions: {resource: {}}}", "conditions.resource: empty", 3},
		{"impossible context test", "name: p\nrules:\n  - {effect: allow, actions: ['a:b'], conditions: {context: {x: {exists: false, matches: y}}}}", "exists: false cannot be combined", 3},
		{"alias", "name: p\nrules:\n  - &r {effect: allow, actions: ['a:b']}\n  - *r", "YAML aliases (*r) are not supported", 4},
		{"unnamed rule collides with an explicit name", "name: p\nrules:\n  - {name: rule-2, effect: allow, actions: ['a:b']}\n  - {effect: deny, actions: ['a:c']}", `rules[1]: unnamed rules are named after their position, and "rule-2" is taken by rules[0]`, 4},
		{"maxDepth 0", "name: p\ndelegation: {maxDepth: 0}", "delegation.maxDepth: expected a whole number from 1 to 5, got \"0\"", 2},
		{"maxDepth 6", "name: p\ndelegation: {maxDepth: 6}", "delegation.maxDepth: expected a whole number from 1 to 5", 2},
		{"delegation without maxDepth", "name: p\ndelegation: {permissionCeiling: ['read:*']}", "delegation.maxDepth: missing", 2},
		{"bad ceiling pattern", "name: p\ndelegation: {maxDepth: 1, permissionCeiling: ['']}", "delegation.permissionCeiling[0]: empty pattern", 2},
		{"rate limit negative", "name: p\nrateLimits: {requestsPerMinute: -1}", "rateLimits.requestsPerMinute: expected a whole number from 1", 2},
		{"rate limit empty", "name: p\nrateLimits: {}", "rateLimits: empty", 2},
		{"rule rate limit wrong type", "name: p\nrules:\n  - {effect: allow, actions: ['a:b'], conditions: {rateLimit: {requestsPerMinute: lots}}}", "rateLimit.requestsPerMinute: expected a whole number", 3},
		{"document not a mapping", "- a\n- b", "expected a mapping, got a list", 1},
		{"syntax error", "name: p\nrules: [\n", "invalid YAML", 2},
		{"tab indentation", "name: p\n\trules: []", "invalid YAML", 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("bad.yaml", []byte(tc.yaml))
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			var list ErrorList
			if !errors.As(err, &list) {
				t.Fatalf("error %T is not an ErrorList", err)
			}
			for _, e := range list {
				if strings.Contains(e.Error(), tc.want) {
					if e.Line != tc.line || e.File != "bad.yaml" {
						t.Fatalf("error %q at %s:%d, want line %d", e.Msg, e.File, e.Line, tc.line)
					}
					return
				}
			}
			t.Fatalf("errors:\n%v\nwant one containing %q", err, tc.want)
		})
	}
}

func TestParseReportsEveryError(t *testing.T) {
	_, err := Parse("bad.yaml", []byte("name: p\nrules:\n  - {effect: permit, actions: []}\n  - {effect: allow, actions: ['x'], colour: red}\n"))
	var list ErrorList
	if !errors.As(err, &list) || len(list) < 4 {
		t.Fatalf("want at least 4 errors, got %v", err)
	}
}

func TestParseMultiDocument(t *testing.T) {
	ps, err := Parse("multi.yaml", []byte("name: a\n---\n# only a comment\n---\nname: b\nversion: 2\n---\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 2 || ps[0].Name != "a" || ps[1].Name != "b" || ps[1].Version != "2" || ps[1].Source.Line != 5 {
		t.Fatalf("got %+v", ps)
	}
	if ps[0].DefaultEffect != Deny {
		t.Fatal("defaultEffect should default to deny")
	}
}

func TestUnverifiedIsUntrusted(t *testing.T) {
	ps, err := Parse("p.yaml", []byte("name: p\nappliesTo: {trustTiers: [unverified]}"))
	if err != nil || ps[0].AppliesTo.TrustTiers[0].String() != "untrusted" {
		t.Fatalf("got %v %v", ps, err)
	}
}

func TestDuplicatePolicyNamesAcrossFiles(t *testing.T) {
	a, _ := Parse("a.yaml", []byte("name: same"))
	b, _ := Parse("b.yaml", []byte("\n\nname: same"))
	_, err := Compile(append(a, b...))
	if err == nil || !strings.Contains(err.Error(), `b.yaml:3: name: duplicate policy name "same" (also defined at a.yaml:1)`) {
		t.Fatalf("got %v", err)
	}
}

func TestParseLimits(t *testing.T) {
	big := make([]byte, MaxFileBytes+1)
	if _, err := Parse("big.yaml", big); err == nil || !strings.Contains(err.Error(), "limit") {
		t.Fatalf("oversized file: %v", err)
	}
	long := strings.Repeat("a", MaxPatternLen) + ":x"
	if _, err := Parse("long.yaml", []byte("name: p\nrules: [{effect: allow, actions: ['"+long+"']}]")); err == nil {
		t.Fatal("oversized pattern accepted")
	}
}

// bomb is a billion-laughs ladder of anchored lists, written as a flow
// sequence so it can sit under any key that takes a list: nine levels of
// nine aliases would stand for 9^9 (387 million) scalars if expanded.
func bomb(indent string) string {
	var b strings.Builder
	b.WriteString("[&l0 [x, x, x, x, x, x, x, x, x]")
	for i := 1; i <= 8; i++ {
		fmt.Fprintf(&b, ",\n%s &l%d [", indent, i)
		for j := range 9 {
			if j > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "*l%d", i-1)
		}
		b.WriteString("]")
	}
	b.WriteString("]")
	return b.String()
}

// TestAliasBombRefused: a billion-laughs document under keys the schema
// accepts (so no "unknown key" error can hide the point) is refused for its
// aliases, at the first alias (the line after the key), and nothing else. A hang guard
// bounds the wait: were aliases expanded, the call would not return.
func TestAliasBombRefused(t *testing.T) {
	const want = "YAML aliases (*l0) are not supported; write the value out"
	tests := []struct {
		name  string
		parse func(data []byte) error
		doc   string
		line  int
	}{
		{"under a rule's actions", func(b []byte) error { _, err := Parse("bomb.yaml", b); return err },
			"name: p\nrules:\n  - effect: allow\n    actions: " + bomb("     "), 5},
		{"under a context condition's in", func(b []byte) error { _, err := Parse("bomb.yaml", b); return err },
			"name: p\nrules:\n  - effect: allow\n    actions: ['read:x']\n    conditions:\n      context:\n        k: {in: " + bomb("          ") + "}", 8},
		{"under a delegation ceiling", func(b []byte) error { _, err := Parse("bomb.yaml", b); return err },
			"name: p\ndelegation:\n  maxDepth: 1\n  permissionCeiling: " + bomb("   "), 5},
		{"under a test case's context, which takes nested values", func(b []byte) error {
			dir, err := ParseAgents("agents.yaml", []byte(agentsYAML))
			if err != nil {
				t.Fatal(err)
			}
			_, err = ParseTests("bomb.yaml", b, dir)
			return err
		}, "tests:\n  - agent: emailer\n    action: 'read:x'\n    expect: allow\n    context:\n      k: " + bomb("       "), 7},
		{"under an agent's tags", func(b []byte) error { _, err := ParseAgents("bomb.yaml", b); return err },
			"agents:\n  - name: a\n    trustTier: verified\n    tags: " + bomb("     "), 5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			done := make(chan error, 1)
			go func() { done <- tc.parse([]byte(tc.doc)) }()
			var err error
			select {
			case err = <-done:
			case <-time.After(10 * time.Second): // a hang guard, not a timing assertion
				t.Fatal("the parser did not return within 10s: aliases are being expanded")
			}
			var list ErrorList
			if !errors.Is(err, ErrInvalid) || !errors.As(err, &list) {
				t.Fatalf("error %v is not an ErrorList wrapping ErrInvalid", err)
			}
			if len(list) != 1 || list[0].Msg != want || list[0].Line != tc.line || list[0].File != "bomb.yaml" {
				t.Fatalf("errors:\n%v\nwant exactly one, at bomb.yaml:%d: %s", err, tc.line, want)
			}
		})
	}
}

// TestErrorsCutLongValues: a value quoted in an error is cut, so a file
// that is one long scalar (not a policy at all) is not repeated whole.
func TestErrorsCutLongValues(t *testing.T) {
	long := strings.Repeat("x", 60) + strings.Repeat("SECRET", 100)
	_, err := Parse("f.yaml", []byte(long))
	if err == nil || strings.Contains(err.Error(), "SECRET") || !strings.Contains(err.Error(), "…\" (660 bytes)") {
		t.Fatalf("Parse = %v", err)
	}
	_, err = Parse("f.yaml", []byte("name: p\nrules:\n  - {name: r, effect: "+long+", actions: [\"read:*\"]}\n"))
	if err == nil || strings.Contains(err.Error(), "SECRETSECRET") {
		t.Fatalf("Parse = %v", err)
	}
	_, err = Parse("f.yaml", []byte("name: p\n"+long+": 1\n"))
	if err == nil || strings.Contains(err.Error(), "SECRETSECRET") || !strings.Contains(err.Error(), "unknown key") {
		t.Fatalf("Parse = %v", err)
	}
}
