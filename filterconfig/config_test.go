package filterconfig_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/filterconfig"
	"github.com/meshguard/meshguard/filterconfig/filtertest"
	"github.com/meshguard/meshguard/filterdecider"
)

// edit returns the generated configuration with one member changed (or
// removed, for a nil value).
func edit(t *testing.T, base []byte, key string, value any) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(base, &m); err != nil {
		t.Fatal(err)
	}
	if value == nil {
		delete(m, key)
	} else {
		m[key] = value
	}
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestRefusesBadConfigurations: a configuration the filter cannot use is
// refused whole, by Parse or by New, with an error naming what is wrong.
func TestRefusesBadConfigurations(t *testing.T) {
	env := filtertest.New(t)
	base := env.Config()
	if c, err := filterconfig.Parse(base); err != nil || c.Revision == "" {
		t.Fatalf("the generated configuration: %v (revision %q)", err, c.Revision)
	}
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"not JSON", []byte("{"), "unexpected EOF"},
		{"trailing data", append(append([]byte{}, base...), "{}"...), "data after"},
		{"unknown key", edit(t, base, "jwks_uri", "https://x"), `unknown field "jwks_uri"`},
		{"no version", edit(t, base, "version", nil), "version: 0"},
		{"future version", edit(t, base, "version", 2), "version: 2"},
		{"bad mode", edit(t, base, "mode", "permissive"), "mode"},
		{"unknown answer part", edit(t, base, "answer", "tier,agent-tier"), `answer: unknown answer part "agent-tier"`},
		{"answer part named twice", edit(t, base, "answer", "chain,chain"), `answer: answer part "chain" named twice`},
		{"no JWKS", edit(t, base, "jwks", nil), "jwks: required"},
		{"bad JWKS", edit(t, base, "jwks", map[string]any{"keys": []any{map[string]any{"kty": "oct", "k": "c2VjcmV0", "kid": "a"}}}), "jwks"},
		{"no upstream", edit(t, base, "meshguard", map[string]any{"token": "x"}), "meshguard.cluster"},
		{"no credential", edit(t, base, "meshguard", map[string]any{"cluster": "mg"}), "meshguard.token"},
		{"bad agent id", edit(t, base, "agents", []any{map[string]any{"id": "bob", "name": "bob", "tier": "verified"}}), "agents[0]: id"},
		{"bad tier", edit(t, base, "agents", []any{map[string]any{"id": env.Orch.ID, "name": "o", "tier": "root"}}), "agents[0]: tier"},
		{"agent twice", edit(t, base, "agents", []any{
			map[string]any{"id": env.Orch.ID, "name": "o", "tier": "verified"}, map[string]any{"id": env.Orch.ID, "name": "p", "tier": "verified"}}), "listed twice"},
		{"policy that does not parse", edit(t, base, "policies", []any{map[string]any{"name": "p", "rules": "none"}}), "policies[0]"},
		{"route without a path", edit(t, base, "routes", []any{map[string]any{"action": "read:x"}}), "routes[0].path"},
		{"service with a bad tier", edit(t, base, "services", []any{map[string]any{"name": "s", "hosts": []string{"s.mesh"}, "minTier": "root"}}), "minTier"},
		{"batch too large", edit(t, base, "audit", map[string]any{"batchSize": 100000}), "audit.batchSize"},
		{"too large", []byte(`{"version":1,"x":"` + strings.Repeat("a", filterconfig.MaxBytes) + `"}`), "the limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := filterconfig.Parse(tt.data)
			if err == nil {
				_, err = filterdecider.New(c, filterdecider.Options{})
			}
			if !errors.Is(err, filterconfig.ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v; want ErrInvalid mentioning %q", err, tt.want)
			}
		})
	}
}

// TestGenerateIsStable: the same state gives the same bytes and revision;
// a change gives another revision.
func TestGenerateIsStable(t *testing.T) {
	env := filtertest.New(t)
	a, b := env.Generate(t), env.Generate(t)
	if string(a) != string(b) {
		t.Fatal("two generations of one state differ")
	}
	env.F.Revoke(t, env.Mail.ID)
	c := env.Generate(t)
	ca, _ := filterconfig.Parse(a)
	cc, err := filterconfig.Parse(c)
	if err != nil || ca.Revision == cc.Revision || len(cc.RevokedAgents) != len(ca.RevokedAgents)+1 {
		t.Fatalf("after a revocation: %v, revisions %s → %s, revoked %d → %d", err, ca.Revision, cc.Revision, len(ca.RevokedAgents), len(cc.RevokedAgents))
	}
}

// TestGenerateCarriesTheAnswer: ANSWER_EXTRAS reaches the filter as its
// list, read back as the same set; the default writes nothing.
func TestGenerateCarriesTheAnswer(t *testing.T) {
	for _, a := range []engine.Answer{0, engine.AnswerTier | engine.AnswerChain, engine.AnswerAll} {
		out, _, err := filterconfig.Generate(filterconfig.Inputs{Answer: a, JWKS: []byte(`{"keys":[]}`), MeshGuard: filterconfig.Upstream{Cluster: "meshguard", Token: "t"}})
		if err != nil {
			t.Fatal(err)
		}
		c, err := filterconfig.Parse(out)
		if err != nil {
			t.Fatal(err)
		}
		got, err := engine.ParseAnswer(c.Answer)
		if err != nil || got != a || (a == 0) != (c.Answer == "") {
			t.Errorf("answer %v: generated %q, read back %v, %v", a, c.Answer, got, err)
		}
	}
}
