package admin

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/meshguard/meshguard/identity"
	"github.com/meshguard/meshguard/trust"
)

// TestAPIConversions holds the admin API's agent and revocation bodies to
// identity's own JSON: the operator sees every field, a revoked status
// above all. Every field of the fixtures is set (checked by reflection),
// so a field added to identity and left out of the conversion changes the
// bytes, and a fixture that misses the new field fails first.
func TestAPIConversions(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	agent := identity.Agent{ID: "agent_x", Name: "x", TrustTier: trust.Trusted, Tags: []string{"t"}, Hosts: []string{"x.mesh"},
		SPIFFEIDs: []string{"spiffe://mesh/x"}, Metadata: map[string]string{"k": "v"}, Status: identity.StatusRevoked, CreatedAt: at, UpdatedAt: at.Add(time.Hour)}
	rev := identity.RevokedToken{JTI: "j", AgentID: "agent_x", ExpiresAt: at, RevokedAt: at.Add(time.Minute), Reason: "leaked"}
	tests := []struct {
		name    string
		in, out any
	}{
		{"agent", agent, agentBody(agent)},
		{"agents", []identity.Agent{agent}, agentBodies([]identity.Agent{agent})},
		{"revocation", rev, revocationBody(rev)},
		{"revocations", []identity.RevokedToken{rev}, revocationBodies([]identity.RevokedToken{rev})},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := reflect.ValueOf(tc.in)
			if v.Kind() == reflect.Slice {
				v = v.Index(0)
			}
			for i := range v.NumField() {
				if v.Field(i).IsZero() {
					t.Fatalf("fixture: %s.%s is zero; set it", v.Type(), v.Type().Field(i).Name)
				}
			}
			want, err := json.Marshal(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			got, err := json.Marshal(tc.out)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != string(want) {
				t.Errorf("API JSON\n %s\nwant\n %s", got, want)
			}
		})
	}
}
