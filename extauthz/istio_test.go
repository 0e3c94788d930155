package extauthz

import (
	"context"
	"slices"
	"strings"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/metadata"

	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/engine/enginetest"
)

// The workloads of an Istio mesh: the researcher runs as service account
// researcher in namespace research, the emailer as emailer in tools.
const (
	istioResearcher = "spiffe://cluster.local/ns/research/sa/researcher"
	istioEmailer    = "spiffe://cluster.local/ns/tools/sa/emailer"
	istioStranger   = "spiffe://cluster.local/ns/default/sa/default"
)

// istioCheck is the CheckRequest the emailer's sidecar sends under Istio
// mTLS (an AuthorizationPolicy with action CUSTOM naming MeshGuard's
// envoyExtAuthzGrpc provider): the peer's SPIFFE ID as source.principal,
// the emailer's own as destination.principal, and the
// x-forwarded-client-cert header the sidecar adds for the upstream. from is
// the caller's SPIFFE ID ("" for a plaintext connection, which has none).
func istioCheck(from string, c call) *authv3.CheckRequest {
	req := envoyCheck(c)
	a := req.GetAttributes()
	a.Source.Principal = from
	a.Source.Address = sockAddr("10.244.1.17", 52344)
	a.Destination.Principal = istioEmailer
	a.Destination.Address = sockAddr("10.244.2.9", 8080)
	h := a.GetRequest().GetHttp().GetHeaders()
	h["x-forwarded-proto"] = "https"
	h["x-envoy-peer-metadata-id"] = "sidecar~10.244.1.17~researcher-7d9f8c6b5-x2x9q.research~research.svc.cluster.local"
	if from != "" {
		h["x-forwarded-client-cert"] = `By=` + istioEmailer + `;Hash=4c0b6d1e3e1b7c2d9f5a8e6b3c1d0f9e8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d;Subject="";URI=` + from
	}
	return req
}

// TestGRPCIstioPeerPrincipal sends, over real gRPC, the CheckRequest
// Envoy builds under Istio mTLS: the peer's SPIFFE ID identifies its agent
// without a token, a token and a principal that disagree are denied, and
// neither the x-forwarded-client-cert header nor anything else the caller
// writes is taken as its identity.
func TestGRPCIstioPeerPrincipal(t *testing.T) {
	m := newMesh(t, enginetest.Options{Now: fixedClock()})
	m.f.Bind(t, m.res.ID, istioResearcher)
	m.f.Bind(t, m.mail.ID, istioEmailer)
	rec := &recorder{c: m.f.Engine}
	client := startServer(t, NewServer(rec, testLog(t, nil)).TrustPrincipalsFrom(func(context.Context) bool { return true }))
	email := call{method: "POST", host: "smtp.internal", path: "/email?to=team@example.com"}
	withToken := func(c call, tok string) call { c.token = tok; return c }
	withHeader := func(c call, k, v string) call { c.headers = map[string]string{k: v}; return c }

	tests := []struct {
		name   string
		req    *authv3.CheckRequest
		status int // 200 for an allow
		reason string
		agent  string // upstream x-meshguard-agent-id of an allow
	}{
		{"the researcher's workload, no token", istioCheck(istioResearcher, email), 200, "", m.res.ID},
		{"the researcher's token from its workload", istioCheck(istioResearcher, withToken(email, m.resT)), 200, "", m.res.ID},
		{"an unbound agent's token from an unbound workload", istioCheck(istioStranger, withToken(call{method: "GET", host: "docs.internal", path: "/docs/x"}, m.orchT)), 200, "", m.orch.ID},
		{"the emailer's token from the researcher's workload", istioCheck(istioResearcher, withToken(email, m.mailT)), 403, engine.ReasonIdentityMismatch, ""},
		{"the researcher's token from an unbound workload", istioCheck(istioStranger, withToken(email, m.resT)), 403, engine.ReasonIdentityMismatch, ""},
		{"the researcher's token over plaintext", istioCheck("", withToken(email, m.resT)), 200, "", m.res.ID},
		{"an unbound workload, no token", istioCheck(istioStranger, email), 401, engine.ReasonUnauthorized, ""},
		{"plaintext, no token", istioCheck("", email), 401, engine.ReasonUnauthorized, ""},
		{"a forged x-forwarded-client-cert naming the researcher", istioCheck(istioStranger,
			withHeader(email, "x-forwarded-client-cert", "By="+istioEmailer+";URI="+istioResearcher)), 401, engine.ReasonUnauthorized, ""},
		{"a forged x-forwarded-client-cert over plaintext", istioCheck("",
			withHeader(email, "x-forwarded-client-cert", "URI="+istioResearcher)), 401, engine.ReasonUnauthorized, ""},
		{"a principal over the limit", istioCheck(istioResearcher+"/"+strings.Repeat("a", engine.MaxPrincipalLen), email), 400, engine.ReasonBadRequest, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp := check(t, client, tc.req)
			if tc.status == 200 {
				up, _, _ := allowed(t, resp)
				if up[engine.HeaderAgentID] != tc.agent {
					t.Fatalf("upstream agent %q, want %q", up[engine.HeaderAgentID], tc.agent)
				}
				// The engine was given the principal Envoy verified, and
				// nothing from x-forwarded-client-cert.
				if r, _ := rec.last(); r.Principal != tc.req.GetAttributes().GetSource().GetPrincipal() {
					t.Fatalf("engine principal %q, want source.principal %q", r.Principal, tc.req.GetAttributes().GetSource().GetPrincipal())
				}
				return
			}
			b, _ := denied(t, resp, tc.status)
			if b.Reason != tc.reason {
				t.Fatalf("reason %q (%s), want %q", b.Reason, b.Message, tc.reason)
			}
		})
	}
}

// TestGRPCPrincipalNotUTF8: a principal that is not UTF-8 is refused with a
// 400 before the engine. gRPC-Go will not marshal one, so this calls the
// service in process, as a client that does marshal one would reach it.
func TestGRPCPrincipalNotUTF8(t *testing.T) {
	m := newMesh(t, enginetest.Options{})
	rec := &recorder{c: m.f.Engine}
	resp, err := NewServer(rec, testLog(t, nil)).Check(context.Background(),
		istioCheck("spiffe://cluster.local/ns/research/sa/\xff", call{method: "GET", host: "docs.internal", path: "/docs/x", token: m.resT}))
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := denied(t, resp, 400); b.Reason != engine.ReasonBadRequest || !strings.Contains(b.Message, "principal") {
		t.Fatalf("body %+v", b)
	}
	if _, n := rec.last(); n != 0 {
		t.Fatalf("the engine was asked %d times", n)
	}
}

// TestGRPCPrincipalOnlyFromProxies: anyone who reaches the gRPC port can
// write a CheckRequest, so a source principal is believed only from a
// caller the server's vouches function accepts (a proxy listed in
// PROXIES_FILE); from anyone else it is ignored, as if the request had
// come without mTLS — a forged principal authenticates nobody.
func TestGRPCPrincipalOnlyFromProxies(t *testing.T) {
	m := newMesh(t, enginetest.Options{Now: fixedClock()})
	m.f.Bind(t, m.res.ID, istioResearcher)
	email := call{method: "POST", host: "smtp.internal", path: "/email?to=team@example.com"}
	proxy := func(ctx context.Context) bool {
		md, _ := metadata.FromIncomingContext(ctx)
		return slices.Contains(md.Get("authorization"), "Bearer proxy-credential")
	}
	for _, tc := range []struct {
		name    string
		vouches func(context.Context) bool
		md      []string
		status  int
	}{
		{"no caller is believed", nil, nil, 401},
		{"an unlisted caller", proxy, nil, 401},
		{"an unlisted caller with a wrong credential", proxy, []string{"authorization", "Bearer guess"}, 401},
		{"a listed proxy", proxy, []string{"authorization", "Bearer proxy-credential"}, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{c: m.f.Engine}
			client := startServer(t, NewServer(rec, testLog(t, nil)).TrustPrincipalsFrom(tc.vouches))
			ctx := t.Context()
			if tc.md != nil {
				ctx = metadata.AppendToOutgoingContext(ctx, tc.md...)
			}
			resp, err := client.Check(ctx, istioCheck(istioResearcher, email))
			if err != nil {
				t.Fatal(err)
			}
			if tc.status == 200 {
				if up, _, _ := allowed(t, resp); up[engine.HeaderAgentID] != m.res.ID {
					t.Fatalf("upstream %v", up)
				}
				return
			}
			denied(t, resp, tc.status)
			if r, _ := rec.last(); r.Principal != "" {
				t.Fatalf("the engine was given the principal %q", r.Principal)
			}
		})
	}
}
