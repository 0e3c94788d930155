package filter_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/types"

	"github.com/meshguard/meshguard/filterconfig/filtertest"
)

// TestUpstreamHeadersOddMaps: the compiled filter serialises the upstream
// header map itself (mapBytes) where natively the SDK's emulator takes the
// map as it is, so for allowed requests of odd shapes — more pairs than
// the VM keeps (maxKeptPairs), a name repeated, empty values, a value of 30 KB (the filter refuses
// more than 32 KB), bytes Envoy would not pass (a NUL, invalid UTF-8) — the headers
// forwarded upstream are the same pairs in the same order in both, keep
// the request's own headers, and carry nothing of the request before
// (its token, its headers), whichever is larger.
func TestUpstreamHeadersOddMaps(t *testing.T) {
	// What the filter adds: MeshGuard's headers and the trace context.
	set := func(name string) bool {
		name = strings.ToLower(name)
		return strings.HasPrefix(name, "x-meshguard-") || name == "traceparent"
	}
	env := filtertest.New(t)
	base := [][2]string{{":method", "GET"}, {":authority", "docs.mesh"}, {":path", "/docs/readme"}, {"authorization", "Bearer " + env.OrchT}}
	many := func(n int, name string) [][2]string {
		hs := make([][2]string, n)
		for i := range hs {
			hs[i] = [2]string{fmt.Sprintf("%s-%d", name, i), fmt.Sprintf("v%d", i)}
		}
		return hs
	}
	cases := []struct {
		name  string
		extra [][2]string
	}{
		{"none", nil},
		{"more pairs than the VM keeps", many(190, "x-many")},
		{"then a few", many(3, "x-few")},
		{"a name repeated", [][2]string{{"x-rep", "a"}, {"x-rep", "b"}, {"x-rep", ""}}},
		{"empty values", [][2]string{{"x-empty", ""}, {"x-empty-2", ""}}},
		{"a 30 KB value", [][2]string{{"x-big", strings.Repeat("b", 30<<10)}}},
		{"bytes Envoy would not pass", [][2]string{{"x-nul", "a\x00b"}, {"x-bad-utf8", "\xff\xfe"}}},
		{"again more pairs than kept", many(129, "x-over")},
		{"last, none", nil},
	}
	forwarded := map[string][][][2]string{}
	for _, run := range runners(t) {
		t.Run(run.name, func(t *testing.T) {
			e := start(t, run.vm, env.Config())
			var prev [][2]string
			for _, tc := range cases {
				sent := append(slices.Clone(base), tc.extra...)
				id := e.host.InitializeHttpContext()
				if a := e.host.CallOnRequestHeaders(id, sent, true); a != types.ActionContinue {
					t.Fatalf("%s: action %v, want an allow (answer %+v)", tc.name, a, e.host.GetSentLocalResponse(id))
				}
				up := e.host.GetCurrentRequestHeaders(id)
				forwarded[run.name] = append(forwarded[run.name], up)
				at := 0
				for _, kv := range sent {
					j := slices.Index(up[at:], kv)
					if j < 0 {
						t.Fatalf("%s: sent header %.40q not forwarded in order", tc.name, kv)
					}
					at += j + 1
				}
				for _, kv := range up {
					if !slices.Contains(sent, kv) && !set(kv[0]) {
						t.Errorf("%s: forwarded %.60q, which the request did not send and MeshGuard does not set", tc.name, kv)
					}
				}
				for _, kv := range prev {
					if !slices.Contains(sent, kv) && slices.Contains(up, kv) && !set(kv[0]) {
						t.Errorf("%s: the request before's %.40q forwarded", tc.name, kv)
					}
				}
				prev = sent
				e.host.CompleteHttpContext(id)
			}
		})
	}
	if n, w := forwarded["native"], forwarded["wasm"]; len(n) == len(cases) && len(w) == len(cases) {
		for i := range cases {
			if len(n[i]) != len(w[i]) {
				t.Errorf("%s: compiled forwarded %d headers, natively %d", cases[i].name, len(w[i]), len(n[i]))
				continue
			}
			for j := range n[i] {
				if n[i][j] != w[i][j] && (n[i][j][0] != w[i][j][0] || !random(n[i][j][0])) {
					t.Errorf("%s: header %d forwarded compiled as %.60q, natively as %.60q", cases[i].name, j, w[i][j], n[i][j])
				}
			}
		}
	}
}

// random says whether the filter's header named name holds an id it makes
// at random (the trace context, the decision's ids): compiled and native
// runs differ there.
func random(name string) bool {
	switch strings.ToLower(name) {
	case "traceparent", "x-meshguard-trace-id", "x-meshguard-decision-id":
		return true
	}
	return false
}
