package catalog_test

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/meshguard/meshguard/catalog"
	"github.com/meshguard/meshguard/trust"
)

// TestAPIConversions holds that an entry reads the same in the API as in
// catalog's own JSON and that the conversions lose nothing: every field is
// set, so a field left out changes the bytes or the round trip.
func TestAPIConversions(t *testing.T) {
	tests := []struct {
		name string
		e    catalog.Entry
	}{
		{"every field", catalog.Entry{Source: catalog.SourceStored, Service: catalog.Service{Name: "ledger", Hosts: []string{"ledger.mesh"}, Port: 8080, Endpoints: []string{"10.0.0.9:8080"}, Agent: "agt_x", MinTier: trust.Verified, Routes: []catalog.Route{{Method: "GET", Path: "/a*", Action: "read:a"}}, Protocol: "mcp"}}},
		{"nil lists", catalog.Entry{Source: catalog.SourceFile, Service: catalog.Service{Name: "bare"}}},
	}
	for _, tc := range tests {
		want, err := json.Marshal(tc.e)
		if err != nil {
			t.Fatal(err)
		}
		got, err := json.Marshal(tc.e.API())
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Errorf("%s: API JSON\n %s\nwant\n %s", tc.name, got, want)
		}
		a := tc.e.Service.API()
		if diff := cmp.Diff(tc.e.Service, catalog.ServiceFromAPI(&a)); diff != "" {
			t.Errorf("%s: round trip (-want +got):\n%s", tc.name, diff)
		}
	}
}
