package engine_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/engine/enginetest"
)

// TestDecisionIDsBeginWithTheirMilliseconds: "the first 12 hex digits
// [of a decision id] are the decision's Unix milliseconds, so ids sort by
// time" (docs/audit.md), and the audit record's id is the decision id's
// with the audit prefix. The audit ids MeshGuard makes for records it
// stores on another's behalf (NewAuditID) follow the same rule.
func TestDecisionIDsBeginWithTheirMilliseconds(t *testing.T) {
	// Every byte of the millisecond count differs from its neighbours, so
	// a byte taken from the wrong place shows.
	now := time.UnixMilli(0x0102_0304_0506).UTC()
	m := newMesh(t, enginetest.Options{Now: func() time.Time { return now }})
	want := fmt.Sprintf("%012x", now.UnixMilli())
	d := check(t, m.F.Engine, engine.Request{Token: m.MailT, Method: "GET", Path: "/contacts"})
	if len(d.ID) != len("dec_")+24 || d.ID[:4] != "dec_" || d.ID[4:16] != want {
		t.Fatalf("decision id %q, want dec_%s followed by 12 random hex digits", d.ID, want)
	}
	if id := engine.NewAuditID(now); len(id) != len("aud_")+24 || id[:16] != "aud_"+want {
		t.Fatalf("audit id %q, want aud_%s…", id, want)
	}
	later := engine.NewAuditID(now.Add(time.Millisecond))
	if earlier := engine.NewAuditID(now); later <= earlier {
		t.Fatalf("%q (a millisecond later) does not sort after %q", later, earlier)
	}
}
