package server

import (
	"context"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/meshguard/meshguard/api"
	"github.com/meshguard/meshguard/config"
	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/telemetry/jaegertest"
)

const chainPolicy = `name: mesh
appliesTo: {tags: [mesh]}
rules:
  - {name: reads, effect: allow, actions: ["read:*"]}
delegation: {maxDepth: 3}
`

// hop is one call of the chain as Envoy's ext_authz sees it.
func (r *running) hop(t *testing.T, token, delegation, host, path, traceparent string) *authv3.CheckResponse {
	t.Helper()
	h := map[string]string{"authorization": "Bearer " + token, ":path": path, ":method": "GET", "traceparent": traceparent}
	if delegation != "" {
		h[engine.HeaderDelegation] = delegation
	}
	req := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
		Http: &authv3.AttributeContext_HttpRequest{Method: "GET", Host: host, Path: path, Headers: h},
	}}}
	resp, err := authv3.NewAuthorizationClient(r.grpc).Check(context.Background(), req)
	if err != nil || resp.GetOkResponse() == nil {
		t.Fatalf("hop to %s%s: %v %v", host, path, resp, err)
	}
	return resp
}

func upstreamHeader(resp *authv3.CheckResponse, name string) string {
	for _, h := range resp.GetOkResponse().GetHeaders() {
		if h.GetHeader().GetKey() == name {
			return h.GetHeader().GetValue()
		}
	}
	return ""
}

// TestDelegationChainIsOneTraceInJaeger: A calls B, B (for A) calls C, C
// (for A and B) reads a record, each through the ext_authz gRPC API with
// the trace's traceparent. Jaeger, fed over OTLP, shows one trace holding
// the three decisions, each under the caller's span and with its chain;
// the audit trail has the same trace with the same span ids.
func TestDelegationChainIsOneTraceInJaeger(t *testing.T) {
	j := jaegertest.Start(t)
	for _, proto := range []struct{ name, endpoint, traceID string }{
		{"grpc", "http://" + j.OTLPGRPCEndpoint(), "0af7651916cd43dd8448eb211c80319c"},
		{"http/protobuf", j.OTLPHTTPEndpoint(), "0bf7651916cd43dd8448eb211c80319c"},
	} {
		t.Run(proto.name, func(t *testing.T) {
			// The exporters read their endpoint from the process
			// environment, as every OTel SDK does.
			t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", proto.endpoint)
			t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", proto.name)
			t.Setenv("OTEL_SERVICE_NAME", "meshguard-e2e")
			r := runWith(t, configWith(t, func(c *config.Config) { writePolicy(t, c, "mesh.yaml", chainPolicy) }),
				Options{Getenv: os.Getenv, Version: "v0.0.0-test"})
			ctx := context.Background()
			ids := map[string]string{}
			tokens := map[string]string{}
			for _, name := range []string{"alpha", "bravo", "charlie"} {
				a, err := r.admin.CreateAgent(ctx, api.CreateAgentRequest{Name: name, TrustTier: "verified", Tags: []string{"mesh"}, Hosts: []string{name + ".mesh"}})
				if err != nil {
					t.Fatal(err)
				}
				ids[name], tokens[name] = a.ID, a.Token
			}
			traceID := proto.traceID
			parents := []string{"a000000000000001", "b000000000000002", "c000000000000003"}
			tp := func(i int) string { return "00-" + traceID + "-" + parents[i] + "-01" }
			first := r.hop(t, tokens["alpha"], "", "bravo.mesh", "/tasks/1", tp(0))
			toB := upstreamHeader(first, engine.HeaderDelegation)
			// The upstream's traceparent names alpha's check span: bravo's
			// own spans hang under the decision that let the call in.
			up := upstreamHeader(first, "traceparent")
			if len(up) != 55 || up[:36] != "00-"+traceID+"-" || up[52:] != "-01" {
				t.Fatalf("upstream traceparent %q", up)
			}
			// bravo drops the traceparent: its delegation token carries the
			// trace, so its hop still hangs under alpha's.
			parents[1] = up[36:52]
			second := r.hop(t, tokens["bravo"], toB, "charlie.mesh", "/tasks/1", "")
			toC := upstreamHeader(second, engine.HeaderDelegation)
			// charlie passes on the traceparent it was given, as an agent
			// that propagates the trace does: its hop hangs under bravo's,
			// a tree three hops deep.
			upC := upstreamHeader(second, "traceparent")
			parents[2] = upC[36:52]
			r.hop(t, tokens["charlie"], toC, "records.internal", "/records/7", upC)
			// charlie, still for alpha and bravo, tries to delete: denied.
			const deniedParent = "d000000000000004"
			denied, err := authv3.NewAuthorizationClient(r.grpc).Check(ctx, &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
				Http: &authv3.AttributeContext_HttpRequest{Method: "DELETE", Host: "records.internal", Path: "/records/7", Headers: map[string]string{
					"authorization": "Bearer " + tokens["charlie"], engine.HeaderDelegation: toC, ":path": "/records/7", ":method": "DELETE",
					"traceparent": "00-" + traceID + "-" + deniedParent + "-01"}},
			}}})
			if err != nil || denied.GetDeniedResponse() == nil {
				t.Fatalf("the delete: %v %v", denied, err)
			}

			var tr api.AuditTrace
			eventually(t, "the chain's three audit records", func() bool { // written within AUDIT_FLUSH_MS
				var err error
				tr, err = r.admin.AuditTrace(ctx, traceID)
				return err == nil && len(tr.Records) == 4
			})
			// Stopping flushes the batched spans: nothing decided is lost.
			r.stop(t)

			wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			// Three checks, each with policy and audit children; the two
			// delegated hops with a delegation check too, and the two that
			// hand the task to an agent with a hand-off check.
			spans, err := j.WaitTrace(wctx, traceID, 4*3+3+2)
			if err != nil {
				t.Fatalf("jaeger: %v (log %s)", err, j.LogPath())
			}
			checks := map[string]jaegertest.Span{} // by parent
			for _, s := range spans {
				if engine.IsCheckSpan(s.OperationName) {
					checks[s.ParentSpanID] = s
				}
			}
			chains := []string{
				`["` + ids["alpha"] + `"]`,
				`["` + ids["alpha"] + `","` + ids["bravo"] + `"]`,
				`["` + ids["alpha"] + `","` + ids["bravo"] + `","` + ids["charlie"] + `"]`,
			}
			for i, p := range parents {
				s, ok := checks[p]
				if !ok {
					t.Fatalf("no meshguard.check under the caller's span %s in %d spans", p, len(spans))
				}
				if s.ServiceName != "meshguard-e2e" || s.Tags["meshguard.decision"] != "allow" ||
					s.Tags["meshguard.delegation.chain"] != chains[i] || s.Tags["meshguard.delegation.depth"] != string(rune('0'+i)) ||
					s.Tags["meshguard.policy_name"] != "mesh" {
					t.Errorf("hop %d span: service %s tags %v", i, s.ServiceName, s.Tags)
				}
				// The audit record of the hop names the same span.
				if tr.Records[i].SpanID != s.SpanID || tr.Records[i].TraceID != traceID {
					t.Errorf("hop %d: audit span %s, jaeger span %s", i, tr.Records[i].SpanID, s.SpanID)
				}
			}
			children := map[string]int{}
			for _, s := range spans {
				if !engine.IsCheckSpan(s.OperationName) {
					children[s.OperationName]++
				}
			}
			// Two hops hand the task to an agent (bravo, then charlie).
			if children[engine.SpanEvaluate] != 4 || children[engine.SpanAudit] != 4 || children[engine.SpanDelegation] != 3 || children[engine.SpanHandOff] != 2 {
				t.Errorf("child spans %v", children)
			}
			// The denied hop stands out: status Error, described by its reason.
			if s, ok := checks[deniedParent]; !ok || s.Tags["otel.status_code"] != "ERROR" || s.Tags["otel.status_description"] != "no_matching_rule" ||
				s.Tags["meshguard.decision"] != "deny" {
				t.Errorf("the denied hop: %v (found %v)", s.Tags, ok)
			}
			// The hops name who called whom, in words a person reads: a
			// call to an agent is "invoke_agent {agent}" (GenAI's name).
			for i, name := range []string{"invoke_agent bravo", "invoke_agent charlie", engine.SpanCheck} {
				if s := checks[parents[i]]; s.OperationName != name {
					t.Errorf("hop %d is named %q, want %q", i, s.OperationName, name)
				}
			}
			if s := checks[parents[2]]; s.Tags["meshguard.delegation.chain_names"] != `["alpha","bravo","charlie"]` {
				t.Errorf("the chain by name: %v", s.Tags)
			}
			for i, name := range []string{"bravo", "charlie"} {
				if s := checks[parents[i]]; s.Tags["gen_ai.agent.name"] != name || s.Tags["meshguard.agent_name"] != []string{"alpha", "bravo"}[i] {
					t.Errorf("hop %d names %v", i, s.Tags)
				}
			}
		})
	}
}

// TestMetricsEndpoint: /metrics, without a token, counts the decisions by
// source, the agents and the audit records stored.
func TestMetricsEndpoint(t *testing.T) {
	r := start(t, nil)
	token := r.agent(t, "reader-1", "reader")
	r.check(t, token, "GET", "/docs/1")
	r.check(t, "not-a-token", "GET", "/docs/1")
	eventually(t, "the metrics of two decisions", func() bool {
		resp, err := http.Get("http://" + r.addrs.HTTP + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		body := string(b)
		for _, want := range []string{
			`meshguard_policy_checks_total{decision="allow",source="ext_authz-grpc"} 1`,
			`meshguard_policy_checks_total{decision="deny",source="ext_authz-grpc"} 1`,
			"meshguard_check_duration_seconds_count 2",
			"meshguard_active_agents 1",
			"meshguard_audit_entries_total 2",
			"meshguard_audit_queue_depth 0",
		} {
			if !strings.Contains(body, want) {
				return false
			}
		}
		return resp.StatusCode == http.StatusOK
	})
}
