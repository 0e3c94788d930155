package policy

import (
	"context"
	"fmt"
	"testing"
)

// TestJSONRoundTrips: every example policy, encoded by JSON and parsed
// back, compiles to a set with the same revision: the wasm filter, which
// receives policies in this form, decides on the same policies as the
// server.
func TestJSONRoundTrips(t *testing.T) {
	set, err := Load(context.Background(), Dir("../examples/policies"))
	if err != nil {
		t.Fatal(err)
	}
	var back []*Policy
	for _, p := range set.Policies() {
		js, err := p.JSON()
		if err != nil {
			t.Fatalf("%s: %v", p.Name, err)
		}
		ps, err := Parse(fmt.Sprintf("bundle/%s", p.Name), js)
		if err != nil {
			t.Fatalf("%s: its JSON does not parse: %v\n%s", p.Name, err, js)
		}
		back = append(back, ps...)
	}
	again, err := Compile(back)
	if err != nil {
		t.Fatal(err)
	}
	if set.Len() < 3 || again.Revision() != set.Revision() {
		t.Fatalf("%d policies; revision %s after the round trip, %s before", set.Len(), again.Revision(), set.Revision())
	}
	// And they decide alike; FuzzParse runs the same check on every policy
	// it parses, its seeds covering every field and operator.
	checkJSONRoundTrip(t, set.Policies(), set)
}
