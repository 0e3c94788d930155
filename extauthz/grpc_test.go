package extauthz

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/engine/enginetest"
	"github.com/meshguard/meshguard/policy"
)

// allowed asserts an OK answer and returns its upstream headers, the headers
// to remove, and the caller's response headers.
func allowed(t *testing.T, resp *authv3.CheckResponse) (up map[string]string, remove []string, rh map[string]string) {
	t.Helper()
	ok := resp.GetOkResponse()
	if codes.Code(resp.GetStatus().GetCode()) != codes.OK || ok == nil {
		t.Fatalf("not allowed: status %v, denied %s", resp.GetStatus(), resp.GetDeniedResponse().GetBody())
	}
	return headerMap(t, ok.GetHeaders()), ok.GetHeadersToRemove(), headerMap(t, ok.GetResponseHeadersToAdd())
}

// denied asserts a denial with the given HTTP status and returns its body
// and headers.
func denied(t *testing.T, resp *authv3.CheckResponse, httpStatus int) (body, map[string]string) {
	t.Helper()
	dr := resp.GetDeniedResponse()
	if dr == nil || codes.Code(resp.GetStatus().GetCode()) == codes.OK {
		t.Fatalf("not denied: %v", resp)
	}
	want := codes.PermissionDenied
	if httpStatus == 401 {
		want = codes.Unauthenticated
	}
	if got := codes.Code(resp.GetStatus().GetCode()); got != want {
		t.Errorf("gRPC status %v, want %v", got, want)
	}
	if got := int(dr.GetStatus().GetCode()); got != httpStatus {
		t.Fatalf("HTTP status %d, want %d (body %s)", got, httpStatus, dr.GetBody())
	}
	h := headerMap(t, dr.GetHeaders())
	if h["content-type"] != "application/json" || h[engine.HeaderDecision] != "deny" || len(h[engine.HeaderTraceID]) != 32 {
		t.Errorf("deny headers: %v", h)
	}
	b := decodeBody(t, []byte(dr.GetBody()))
	if b.TraceID != h[engine.HeaderTraceID] || !strings.HasPrefix(b.DecisionID, "dec_") {
		t.Errorf("deny body ids %q %q, header trace %q", b.TraceID, b.DecisionID, h[engine.HeaderTraceID])
	}
	if md := resp.GetDynamicMetadata().GetFields(); md["decision_id"].GetStringValue() != b.DecisionID || md["effect"].GetStringValue() != "deny" {
		t.Errorf("dynamic metadata %v, deny body decision %s", md, b.DecisionID)
	}
	return b, h
}

func TestGRPCAllowed(t *testing.T) {
	m := newMesh(t, enginetest.Options{})
	rec := &recorder{c: m.f.Engine}
	client := startGRPC(t, rec, testLog(t, nil))

	// The caller tries to pass itself off as the orchestrator upstream and to
	// forward a delegation token; neither may reach the upstream.
	resp := check(t, client, envoyCheck(call{method: "GET", host: "docs.internal:8080", path: "/docs/readme?lang=en", token: m.resT,
		headers: map[string]string{engine.HeaderAgentID: m.orch.ID, engine.HeaderTier: "privileged"}}))
	up, remove, rh := allowed(t, resp)

	want := map[string]string{
		engine.HeaderAgentID: m.res.ID, engine.HeaderAgentName: "researcher", engine.HeaderTier: "verified",
		engine.HeaderChain: m.res.ID,
	}
	for k, v := range want {
		if up[k] != v {
			t.Errorf("upstream %s = %q, want %q", k, up[k], v)
		}
	}
	decisionID := up[engine.HeaderDecisionID]
	if !strings.HasPrefix(decisionID, "dec_") || len(up) != 5 {
		t.Errorf("upstream headers %v", up)
	}
	// Every identity header is set (so not removed); the delegation header
	// is removed because none was minted for this hop.
	if !slices.Equal(remove, []string{engine.HeaderAction, engine.HeaderResource, engine.HeaderContext, engine.HeaderDelegation}) {
		t.Errorf("headers_to_remove %v", remove)
	}
	if rh[engine.HeaderDecision] != "allow" || rh[engine.HeaderTraceID] != traceHex || rh[engine.HeaderPolicy] != "researchers" {
		t.Errorf("response headers %v", rh)
	}
	md := resp.GetDynamicMetadata().GetFields()
	for k, v := range map[string]string{
		"decision_id": decisionID, "agent_id": m.res.ID, "action": "read:docs/readme", "reason": policy.ReasonRuleAllow,
		"policy": "researchers", "rule": "reads", "effect": "allow", "trace_id": traceHex,
	} {
		if got := md[k].GetStringValue(); got != v {
			t.Errorf("dynamic metadata %s = %q, want %q", k, got, v)
		}
	}

	// What the engine was asked.
	r, _ := rec.last()
	if r.Source != engine.SourceExtAuthzGRPC || r.Method != "GET" || r.Host != "docs.internal:8080" || r.Path != "/docs/readme?lang=en" ||
		r.Token != m.resT || r.SourceAddress != "10.0.0.7" || r.TraceID != traceHex {
		t.Errorf("engine request: %+v", r)
	}
}

func TestGRPCDenials(t *testing.T) {
	m := newMesh(t, enginetest.Options{})
	client := startGRPC(t, m.f.Engine, testLog(t, nil))
	tests := []struct {
		name   string
		c      call
		status int
		reason string
		check  func(t *testing.T, b body)
	}{
		{"no token", call{method: "GET", path: "/docs"}, 401, engine.ReasonUnauthorized, nil},
		{"garbage token", call{method: "GET", path: "/docs", token: "abc.def.ghi"}, 401, engine.ReasonUnauthorized, nil},
		{"alg none", call{method: "GET", path: "/docs", token: "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."}, 401, engine.ReasonUnauthorized, nil},
		{"basic scheme", call{method: "GET", path: "/docs", headers: map[string]string{"authorization": "Basic " + m.mailT}}, 401, engine.ReasonUnauthorized,
			func(t *testing.T, b body) {
				if !strings.Contains(b.Message, "missing bearer token") {
					t.Errorf("message %q", b.Message)
				}
			}},
		{"token in another agent's delegation slot", call{method: "GET", path: "/docs", headers: map[string]string{engine.HeaderDelegation: m.orchT}, token: m.mailT},
			403, policy.ReasonDelegationActorMismatch, nil},
		{"external email", call{method: "POST", host: "smtp.internal", path: "/email?to=eve@evil.test", token: m.mailT}, 403, policy.ReasonRuleDeny,
			func(t *testing.T, b body) {
				if b.Error != "forbidden" || b.Policy != "emailers" || b.Rule != "no-external" || b.Action != "write:email" || b.TraceID != traceHex ||
					b.Message != "External email needs a privileged agent" {
					t.Errorf("403 body %+v", b)
				}
			}},
		{"a steering action beside the route's is ignored", call{method: "POST", path: "/outbox?to=eve@evil.test", token: m.mailT, ext: map[string]string{ContextExtensionAction: "write:email"},
			headers: map[string]string{engine.HeaderAction: "read:contacts", engine.HeaderResource: "/contacts"}}, 403, policy.ReasonRuleDeny,
			func(t *testing.T, b body) {
				if b.Action != "write:email" {
					t.Errorf("body %+v", b)
				}
			}},
		{"a steering resource beside the route's is ignored", call{method: "POST", path: "/outbox", token: m.mailT, ext: map[string]string{ContextExtensionAction: "write:email"},
			headers: map[string]string{engine.HeaderResource: "/contacts", engine.HeaderContext: `{"query.to":"a@example.com"}`}}, 403, policy.ReasonRuleDeny, nil},
		{"a path parameter", call{method: "GET", path: "/docs;/private/x", token: m.mailT}, 400, engine.ReasonBadRequest, nil},
		{"two credentials, joined by Envoy", call{method: "GET", path: "/docs", headers: map[string]string{"authorization": "Bearer " + m.mailT + ",Bearer " + m.orchT}}, 400, engine.ReasonBadRequest,
			func(t *testing.T, b body) {
				if !strings.Contains(b.Message, "more than one value") {
					t.Errorf("message %q", b.Message)
				}
			}},
		{"tier below the service's minimum", call{method: "GET", path: "/docs", token: m.mailT, ext: map[string]string{ContextExtensionMinTier: "trusted"}},
			403, engine.ReasonTierBelowMinimum, func(t *testing.T, b body) {
				if !strings.Contains(b.Message, "tier trusted and above") {
					t.Errorf("message %q", b.Message)
				}
			}},
		{"minimum tier that is no tier", call{method: "GET", path: "/docs", token: m.mailT, ext: map[string]string{ContextExtensionMinTier: "root"}},
			400, engine.ReasonBadRequest, nil},
		{"the route table's action, whatever the header says", call{method: "POST", path: "/send/now?to=eve@evil.test", token: m.mailT, headers: map[string]string{engine.HeaderAction: "read:contacts"}},
			403, policy.ReasonRuleDeny, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, _ := denied(t, check(t, client, envoyCheck(tc.c)), tc.status)
			if b.Reason != tc.reason {
				t.Fatalf("reason %q (%s), want %q", b.Reason, b.Message, tc.reason)
			}
			if tc.check != nil {
				tc.check(t, b)
			}
		})
	}

	// A tier at the minimum passes.
	allowed(t, check(t, client, envoyCheck(call{method: "GET", path: "/docs", token: m.mailT, ext: map[string]string{ContextExtensionMinTier: "verified"}})))

	// Context extensions set the route's action, the query the context;
	// the scheme is case-insensitive; the steering headers are removed.
	up, remove, _ := allowed(t, check(t, client, envoyCheck(call{method: "POST", path: "/outbox?to=team@example.com", ext: map[string]string{ContextExtensionAction: "write:email"},
		headers: map[string]string{"authorization": "bEaReR  " + m.mailT, engine.HeaderAction: "read:x"}})))
	if up[engine.HeaderAgentID] != m.mail.ID {
		t.Fatalf("upstream %v", up)
	}
	for _, h := range []string{engine.HeaderAction, engine.HeaderResource, engine.HeaderContext} {
		if !slices.Contains(remove, h) {
			t.Errorf("%s is not removed: %v", h, remove)
		}
	}
}

func TestGRPCRateLimited(t *testing.T) {
	m := newMesh(t, enginetest.Options{Now: fixedClock()})
	client := startGRPC(t, m.f.Engine, testLog(t, nil))
	req := envoyCheck(call{method: "GET", host: "papers.internal", path: "/papers", token: m.resT})
	for range 5 {
		allowed(t, check(t, client, req))
	}
	b, h := denied(t, check(t, client, req), 429)
	if b.Error != "rate_limited" || b.Reason != engine.ReasonRateLimited || b.RetryAfter < 1 || b.Policy != "researchers" || h["retry-after"] != fmt.Sprint(b.RetryAfter) {
		t.Fatalf("429: body %+v headers %v", b, h)
	}
}

// TestGRPCDelegationChain walks orchestrator → researcher → emailer through
// the gRPC API, each hop carrying the token the previous allow minted.
func TestGRPCDelegationChain(t *testing.T) {
	m := newMesh(t, enginetest.Options{})
	client := startGRPC(t, m.f.Engine, testLog(t, nil))

	// orchestrator → researcher.mesh: the researcher gets a delegation token.
	up, remove, _ := allowed(t, check(t, client, envoyCheck(call{method: "POST", host: "researcher.mesh:8080", path: "/research/agents?x=1", token: m.orchT})))
	toRes := up[engine.HeaderDelegation]
	if toRes == "" || up[engine.HeaderChain] != m.orch.ID || slices.Contains(remove, engine.HeaderDelegation) || len(remove) != 3 {
		t.Fatalf("orchestrator → researcher: upstream %v, remove %v", up, remove)
	}

	// researcher → emailer.mesh, carrying it.
	up, _, _ = allowed(t, check(t, client, envoyCheck(call{method: "POST", host: "emailer.mesh", path: "/email?to=team@example.com", token: m.resT,
		headers: map[string]string{engine.HeaderDelegation: toRes}})))
	toMail := up[engine.HeaderDelegation]
	if toMail == "" || toMail == toRes || up[engine.HeaderChain] != m.orch.ID+","+m.res.ID {
		t.Fatalf("researcher → emailer: %v", up)
	}

	// The emailer sends, for orchestrator → researcher; nothing to mint.
	resp := check(t, client, envoyCheck(call{method: "POST", host: "smtp.example.com", path: "/email?to=team@example.com", token: m.mailT,
		headers: map[string]string{engine.HeaderDelegation: toMail}}))
	up, remove, rh := allowed(t, resp)
	if up[engine.HeaderChain] != m.orch.ID+","+m.res.ID+","+m.mail.ID || up[engine.HeaderDelegation] != "" ||
		!slices.Equal(remove, []string{engine.HeaderAction, engine.HeaderResource, engine.HeaderContext, engine.HeaderDelegation}) || rh[engine.HeaderPolicy] != "emailers" {
		t.Fatalf("emailer sends: upstream %v remove %v response %v", up, remove, rh)
	}

	// Outside the orchestrator's ceiling, and a stolen token.
	b, _ := denied(t, check(t, client, envoyCheck(call{method: "POST", path: "/notes/x", token: m.resT,
		headers: map[string]string{engine.HeaderDelegation: toRes}})), 403)
	if b.Reason != policy.ReasonDelegationCeiling || b.Policy != "orchestrators" {
		t.Fatalf("ceiling: %+v", b)
	}
	b, _ = denied(t, check(t, client, envoyCheck(call{method: "POST", path: "/email", token: m.orchT,
		headers: map[string]string{engine.HeaderDelegation: toMail}})), 403)
	if b.Reason != policy.ReasonDelegationActorMismatch {
		t.Fatalf("stolen token: %+v", b)
	}
	// The emailer may not hand on: denied at the boundary, nothing minted.
	b, _ = denied(t, check(t, client, envoyCheck(call{method: "GET", host: "researcher.mesh", path: "/papers", token: m.mailT})), 403)
	if b.Reason != policy.ReasonDelegationNotPermitted {
		t.Fatalf("emailer → researcher: %+v", b)
	}
}

func TestGRPCAuditMode(t *testing.T) {
	m := newMesh(t, enginetest.Options{Mode: engine.ModeAudit})
	client := startGRPC(t, m.f.Engine, testLog(t, nil))

	// Denied by policy, allowed by the mode: OK, and the caller sees why.
	resp := check(t, client, envoyCheck(call{method: "DELETE", path: "/everything", token: m.mailT}))
	up, _, rh := allowed(t, resp)
	if up[engine.HeaderAgentID] != m.mail.ID || rh[engine.HeaderDecision] != "deny" || rh[engine.HeaderMode] != "audit" {
		t.Fatalf("audit deny: upstream %v response %v", up, rh)
	}
	if md := resp.GetDynamicMetadata().GetFields(); md["effect"].GetStringValue() != "deny" || md["reason"].GetStringValue() != policy.ReasonNoPolicy && md["reason"].GetStringValue() != policy.ReasonNoMatchingRule {
		t.Fatalf("audit metadata %v", md)
	}

	// Unauthenticated: let through, but no identity reaches the upstream —
	// not even one the caller forged.
	up, remove, _ := allowed(t, check(t, client, envoyCheck(call{method: "GET", path: "/docs", headers: map[string]string{engine.HeaderAgentID: m.orch.ID}})))
	want := append(slices.Clone(engine.StrippedUpstreamHeaders), engine.HeaderDelegation)
	if len(up) != 0 || !slices.Equal(remove, want) {
		t.Fatalf("audit unauthenticated: upstream %v remove %v", up, remove)
	}
}

func TestGRPCTraceparent(t *testing.T) {
	m := newMesh(t, enginetest.Options{})
	client := startGRPC(t, m.f.Engine, testLog(t, nil))
	const other = "0af7651916cd43dd8448eb211c80319c"
	tests := []struct {
		name   string
		header string // traceparent request header, "" for none
		md     string // traceparent gRPC metadata, "" for none
		want   string // "" for a fresh trace
	}{
		{"header", traceparent, "", traceHex},
		{"header wins over metadata", traceparent, "00-" + other + "-b7ad6b7169203331-01", traceHex},
		{"metadata", "", "00-" + other + "-b7ad6b7169203331-01", other},
		{"upper-case hex", strings.ToUpper(traceparent), "", ""},
		{"version ff", "ff" + traceparent[2:], "", ""},
		{"zero trace id", "00-00000000000000000000000000000000-00f067aa0ba902b7-01", "", ""},
		{"zero parent id", "00-" + traceHex + "-0000000000000000-01", "", ""},
		{"version 00 with more fields", traceparent + "-extra", "", ""},
		{"future version with more fields", "01" + traceparent[2:] + "-extra", "", traceHex},
		{"garbage", "hello", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := call{method: "GET", path: "/docs", token: m.orchT, noTrace: true}
			if tc.header != "" {
				c.headers = map[string]string{"traceparent": tc.header}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if tc.md != "" {
				ctx = metadata.AppendToOutgoingContext(ctx, "traceparent", tc.md)
			}
			resp, err := client.Check(ctx, envoyCheck(c))
			if err != nil {
				t.Fatal(err)
			}
			_, _, rh := allowed(t, resp)
			got := rh[engine.HeaderTraceID]
			switch {
			case tc.want != "" && got != tc.want:
				t.Fatalf("trace id %q, want %q", got, tc.want)
			case tc.want == "" && (len(got) != 32 || got == traceHex || got == other):
				t.Fatalf("trace id %q, want a fresh one", got)
			}
		})
	}
}

func TestGRPCInternalFailure(t *testing.T) {
	m := newMesh(t, enginetest.Options{})
	for _, err := range []error{fmt.Errorf("%w: store: database is locked", engine.ErrInternal), context.DeadlineExceeded} {
		t.Run(err.Error(), func(t *testing.T) {
			var logs syncBuffer
			client := startGRPC(t, failing{err}, testLog(t, &logs))
			req := envoyCheck(call{method: "GET", host: "docs.internal", path: "/docs?api_key=s3cret", token: m.orchT,
				headers: map[string]string{engine.HeaderDelegation: "delegation.token.value"}})
			resp, gerr := client.Check(context.Background(), req)
			if status.Code(gerr) != codes.Unavailable || resp != nil {
				t.Fatalf("got %v, %v; want Unavailable and no response", resp, gerr)
			}
			out := logs.String()
			if !strings.Contains(out, "fail closed") || !strings.Contains(out, err.Error()) {
				t.Fatalf("log: %s", out)
			}
			for _, secret := range []string{m.orchT, "delegation.token.value", "s3cret"} {
				if strings.Contains(out, secret) {
					t.Fatalf("log leaks %q: %s", secret, out)
				}
			}
		})
	}
}
