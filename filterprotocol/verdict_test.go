package filterprotocol_test

import (
	"testing"

	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/filterprotocol"
)

// TestVerdictCarriesEveryHeader: a verdict's headers are the decision's,
// every one, in order: upstream and removed for an allow, response
// headers for an allow that answers them and for a denial.
func TestVerdictCarriesEveryHeader(t *testing.T) {
	for _, tc := range []struct {
		name string
		d    engine.Decision
	}{
		{"an allow", engine.Decision{Allowed: true, Status: 200, ID: "dec_1", TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", SpanID: "00f067aa0ba902b7",
			Effect: "allow", AgentID: "agt_1", AgentName: "orchestrator", Action: "read", Resource: "docs", Chain: []string{"agt_0", "agt_1"}}},
		{"an allow in audit mode", engine.Decision{Allowed: true, Status: 200, ID: "dec_2", Effect: "allow", Mode: engine.ModeAudit, AgentID: "agt_1"}},
		{"a denial", engine.Decision{Status: 403, ID: "dec_3", Effect: "deny", Reason: "no_policy"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := filterprotocol.NewVerdict(&tc.d)
			same(t, "response", v.ResponseHeaders, tc.d.ResponseHeaders())
			if !tc.d.Allowed {
				return
			}
			up, remove := tc.d.UpstreamEdit()
			if len(up) == 0 {
				t.Fatal("the decision sets no upstream header: the case tests nothing")
			}
			same(t, "upstream", v.UpstreamHeaders, up)
			if len(v.RemoveHeaders) != len(remove) {
				t.Fatalf("removes %q, want %q", v.RemoveHeaders, remove)
			}
		})
	}
}

func same(t *testing.T, what string, got [][2]string, want []engine.Header) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s headers %q, want %v", what, got, want)
	}
	for i, h := range want {
		if got[i] != [2]string{h.Name, h.Value} {
			t.Fatalf("%s header %d: %q, want %v", what, i, got[i], h)
		}
	}
}
