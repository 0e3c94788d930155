package engine_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/engine/enginetest"
)

// TestRecordedInputs: a record holds, in inputs, what the policies read
// that no other field holds — the actor's tags, each delegator as the
// policies saw it, the token's scope, the request values looked up and
// not found — and nothing for a request refused before policy; a denial
// by a step after policy (a rate limit) says so.
func TestRecordedInputs(t *testing.T) {
	m := newMesh(t, enginetest.Options{})
	e, rec := recordingEngine(t, m)
	ctx := context.Background()
	check := func(r engine.Request) engine.Decision {
		t.Helper()
		d, err := e.Check(ctx, &r)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	toRes := check(engine.Request{Token: m.OrchT, Method: "POST", Host: "researcher.mesh", Path: "/research/x"})
	tests := []struct {
		name string
		req  engine.Request
		want string // the inputs' JSON; "" for none
	}{
		{"own account: tags, and the query value no request carried", engine.Request{Token: m.OrchT, Method: "GET", Path: "/docs"},
			`{"tags":["orchestrator"],"absent":["query.to"]}`},
		{"a value carried is in the context, not listed", engine.Request{Token: m.MailT, Method: "POST", Path: "/email?to=a@example.com"},
			`{"tags":["emailer"]}`},
		{"delegated: the delegator as the policies saw it", engine.Request{Token: m.ResT, Delegation: toRes.Delegation, Method: "GET", Path: "/docs"},
			`{"tags":["researcher"],"chain":[{"name":"orchestrator","tier":"trusted","tags":["orchestrator"]}],"absent":["query.to"]}`},
		{"POST /v1/check: the context is the caller's whole context", engine.Request{Source: engine.SourceAPI, Token: m.MailT, Action: "read:docs", Resource: "/docs"},
			`{"tags":["emailer"]}`},
		{"refused before policy: no inputs", engine.Request{Token: "not-a-token", Method: "GET", Path: "/docs"}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			*rec = audit.Record{}
			check(tc.req)
			if got := inputsJSON(t, rec.Inputs); got != tc.want {
				t.Fatalf("inputs %s, want %s", got, tc.want)
			}
		})
	}
	t.Run("denied by the rate limit after the policies allowed", func(t *testing.T) {
		for i := 0; ; i++ {
			d := check(engine.Request{Token: m.ResT, Method: "GET", Path: "/rate"})
			if d.Allowed {
				if rec.Inputs == nil || rec.Inputs.AfterPolicy {
					t.Fatalf("allowed, inputs %s", inputsJSON(t, rec.Inputs))
				}
				continue
			}
			if d.Status != 429 || rec.Inputs == nil || !rec.Inputs.AfterPolicy {
				t.Fatalf("denied %d %s, inputs %s: want 429 with afterPolicy", d.Status, d.Reason, inputsJSON(t, rec.Inputs))
			}
			return
		}
	})
}

func inputsJSON(t *testing.T, in *audit.Inputs) string {
	t.Helper()
	if in == nil {
		return ""
	}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
