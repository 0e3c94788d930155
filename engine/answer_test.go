package engine_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/engine/enginetest"
)

// TestAnswerParts: the default answer carries the agent id, the minted
// delegation token and decision_id in the metadata, and nothing on an
// allowed request's response; each ANSWER_EXTRAS item adds its part and
// nothing else; whatever is not set upstream is removed by name.
func TestAnswerParts(t *testing.T) {
	identity := []string{engine.HeaderAgentID, engine.HeaderAgentName, engine.HeaderTier, engine.HeaderDecisionID, engine.HeaderChain}
	tests := []struct {
		name     string
		answer   engine.Answer
		upstream []string // the identity headers set, besides the delegation
		response bool     // an allow's response headers
		metadata []string
	}{
		{"default", 0, []string{engine.HeaderAgentID}, false, []string{"decision_id"}},
		{"agent-name", engine.AnswerAgentName, []string{engine.HeaderAgentID, engine.HeaderAgentName}, false, []string{"decision_id"}},
		{"tier", engine.AnswerTier, []string{engine.HeaderAgentID, engine.HeaderTier}, false, []string{"decision_id"}},
		{"chain", engine.AnswerChain, []string{engine.HeaderAgentID, engine.HeaderChain}, false, []string{"decision_id"}},
		{"decision-id", engine.AnswerDecisionID, []string{engine.HeaderAgentID, engine.HeaderDecisionID}, false, []string{"decision_id"}},
		{"response-headers", engine.AnswerResponseHeaders, []string{engine.HeaderAgentID}, true, []string{"decision_id"}},
		{"metadata", engine.AnswerMetadata, []string{engine.HeaderAgentID}, false,
			[]string{"decision_id", "agent_id", "action", "reason", "policy", "rule", "effect", "trace_id"}},
		{"all", engine.AnswerAll, identity, true, []string{"decision_id", "agent_id", "action", "reason", "policy", "rule", "effect", "trace_id"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := newMesh(t, enginetest.Options{Answer: tc.answer})
			// The orchestrator hands a task to the researcher: a token is
			// minted for it.
			d := check(t, m.F.Engine, engine.Request{Token: m.OrchT, Method: "POST", Host: "researcher.mesh", Path: "/research/x"})
			if !d.Allowed || d.Delegation == "" {
				t.Fatalf("hand-off: %+v", d)
			}
			set, remove := d.UpstreamEdit()
			for _, name := range identity {
				in, out := slices.Contains(names(set), name), slices.Contains(remove, name)
				if want := slices.Contains(tc.upstream, name); in != want || out == want {
					t.Errorf("%s: set %v, removed %v; want set %v (set %v, removed %v)", name, in, out, want, set, remove)
				}
			}
			if !slices.Contains(set, engine.Header{Name: engine.HeaderDelegation, Value: d.Delegation}) {
				t.Errorf("the minted delegation is not set upstream: %v", set)
			}
			if got := d.ResponseHeaders(); (len(got) > 0) != tc.response {
				t.Errorf("an allow's response headers %v, want some: %v", got, tc.response)
			}
			if got := names(d.Metadata()); !slices.Equal(got, tc.metadata) {
				t.Errorf("metadata %v, want %v", got, tc.metadata)
			}

			// A denial keeps what the SDKs read, whatever the setting.
			deny := check(t, m.F.Engine, engine.Request{Token: m.MailT, Method: "POST", Path: "/send/x", Host: "mail.mesh"})
			if deny.Allowed {
				t.Fatalf("not denied: %+v", deny)
			}
			rh := deny.ResponseHeaders()
			if !slices.Contains(rh, engine.Header{Name: engine.HeaderDecision, Value: "deny"}) ||
				!slices.Contains(rh, engine.Header{Name: engine.HeaderTraceID, Value: deny.TraceID}) || len(deny.DenyBody()) == 0 {
				t.Errorf("denial's response headers %v, body %s", rh, deny.DenyBody())
			}
		})
	}
}

// TestAnswerAuditModeKeepsResponseHeaders: in audit mode an allowed
// request still tells the caller what was decided (x-meshguard-decision,
// x-meshguard-mode), which the SDKs read.
func TestAnswerAuditModeKeepsResponseHeaders(t *testing.T) {
	m := newMesh(t, enginetest.Options{Mode: engine.ModeAudit})
	d := check(t, m.F.Engine, engine.Request{Token: m.MailT, Method: "POST", Path: "/send/x", Host: "mail.mesh"})
	rh := d.ResponseHeaders()
	if !d.Allowed || !slices.Contains(rh, engine.Header{Name: engine.HeaderMode, Value: "audit"}) ||
		!slices.Contains(rh, engine.Header{Name: engine.HeaderDecision, Value: d.Effect}) {
		t.Fatalf("audit mode: allowed %v, response headers %v", d.Allowed, rh)
	}
}

func TestParseAnswer(t *testing.T) {
	tests := []struct {
		in   string
		want engine.Answer
		err  string
	}{
		{"", 0, ""},
		{"none", 0, ""},
		{"tier", engine.AnswerTier, ""},
		{"agent-name, chain", engine.AnswerAgentName | engine.AnswerChain, ""},
		{"all", engine.AnswerAll, ""},
		{"metadata,response-headers,decision-id", engine.AnswerMetadata | engine.AnswerResponseHeaders | engine.AnswerDecisionID, ""},
		{"Tier", 0, `unknown answer part "Tier"`},
		{"tier,,chain", 0, `unknown answer part ""`},
		{"tier,tier", 0, `answer part "tier" named twice`},
		{"all,tier", 0, `answer part "tier" named twice`},
		{"none,tier", 0, `unknown answer part "none"`},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := engine.ParseAnswer(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("ParseAnswer(%q) = %v, %v; want error %q", tc.in, got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseAnswer(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
			if back, err := engine.ParseAnswer(got.String()); err != nil || back != got {
				t.Fatalf("String %q reads back as %v, %v", got.String(), back, err)
			}
		})
	}
	if _, err := engine.ParseAnswer("bogus"); !errors.Is(err, engine.ErrAnswerItem) {
		t.Fatalf("an unknown item: %v, want ErrAnswerItem", err)
	}
}
