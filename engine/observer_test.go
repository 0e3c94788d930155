package engine_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/engine/enginetest"
)

// effects records what the engine tells its Observer.
type effects []string

func (e *effects) Decided(_, effect string, _ time.Duration) { *e = append(*e, effect) }

// TestObserverHearsCheckAndReissueAlike: a decision, made or reissued
// from a cached one, is reported with its effect, and a decision that
// could not be recorded as "error" (it was never given), by both.
func TestObserverHearsCheckAndReissueAlike(t *testing.T) {
	m := newMesh(t, enginetest.Options{})
	f := m.F
	req := engine.Request{Token: m.MailT, Method: "GET", Path: "/contacts"}
	for _, tc := range []struct {
		name     string
		recorder engine.Recorder
		want     string
	}{
		{"recorded", f.Audit, "allow"},
		{"not recorded", failingRecorder{}, "error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var heard effects
			e, err := engine.New(engine.Config{Tokens: f.Cached, Delegations: f.Cached, Delegator: f.Issuer,
				Agents: f.Agents, Policies: f.Policies, Limiter: f.Limiter, Recorder: tc.recorder, Observer: &heard})
			if err != nil {
				t.Fatal(err)
			}
			d, err := e.Check(context.Background(), &req)
			if tc.want == "error" {
				if !errors.Is(err, engine.ErrInternal) {
					t.Fatalf("Check with a failing recorder: %v, want ErrInternal", err)
				}
				d = check(t, f.Engine, req) // a decision to reissue
			}
			r := req
			if _, err := e.Reissue(context.Background(), &r, &d); (err != nil) != (tc.want == "error") {
				t.Fatalf("Reissue: %v", err)
			}
			if len(heard) != 2 || heard[0] != tc.want || heard[1] != tc.want {
				t.Fatalf("the observer heard %q, want %q from Check and from Reissue", heard, tc.want)
			}
		})
	}
}
