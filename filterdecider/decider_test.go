package filterdecider_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/extauthz"
	"github.com/meshguard/meshguard/filterconfig"
	"github.com/meshguard/meshguard/filterconfig/filtertest"
	"github.com/meshguard/meshguard/filterdecider"
	"github.com/meshguard/meshguard/internal/edge"
	"github.com/meshguard/meshguard/trust"
)

// request builds the engine request an enforcement point makes of a case:
// the headers through the scan every adapter uses, and as the request's
// own headers for the engine to read.
func request(c *filtertest.Case) (engine.Request, string) {
	merged := edge.MergeRepeated(c.Headers)
	r := engine.Request{Method: c.Method, Host: c.Host, Path: c.Path, Headers: edge.PairHeaders(merged)}
	var sc edge.HeaderScan
	for _, h := range merged {
		if !sc.Add(h[0], h[1]) {
			break
		}
	}
	r.SetHeaders(&sc)
	return r, sc.Bad()
}

// TestDecisionsMatchTheServer: for every case, the filter's local engine,
// compiled from the generated configuration, decides as MeshGuard's own
// engine does when ext_authz hands it the request with the route context
// MeshGuard's xDS gives Envoy — or defers, exactly where MeshGuard holds
// what the decision needs.
func TestDecisionsMatchTheServer(t *testing.T) {
	env := filtertest.New(t)
	cfg, err := filterconfig.Parse(env.Config())
	if err != nil {
		t.Fatal(err)
	}
	local, err := filterdecider.New(cfg, filterdecider.Options{Now: func() time.Time { return filtertest.Now }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, c := range env.Cases() {
		t.Run(c.Name, func(t *testing.T) {
			if _, bad := request(&c); bad != "" {
				// Refused by the header scan before any engine: the same
				// code on both sides.
				if c.Status != 400 {
					t.Fatalf("refused by the scan (%s), want status %d", bad, c.Status)
				}
				return
			}
			sr, _ := request(&c)
			sr.Source = engine.SourceExtAuthzGRPC
			ext := env.RouteContext(c.Method, c.Host, c.Path)
			sr.RouteAction = ext[extauthz.ContextExtensionAction]
			if v, ok := ext[extauthz.ContextExtensionMinTier]; ok {
				sr.MinTier, _ = trust.Parse(v)
			}
			want, err := env.F.Engine.Check(ctx, &sr)
			if err != nil {
				t.Fatal(err)
			}
			if want.Status != c.Status || want.Reason != c.Reason {
				t.Fatalf("the server decided %d %s (%s), the table says %d %s", want.Status, want.Reason, want.Message, c.Status, c.Reason)
			}

			lr, _ := request(&c)
			got, err := local.Check(ctx, &lr)
			if c.Defer {
				if !errors.Is(err, filterdecider.ErrDefer) {
					t.Fatalf("the filter decided %d %s (%v); it must defer to MeshGuard", got.Status, got.Reason, err)
				}
				if lr.RouteAction != sr.RouteAction || lr.MinTier != sr.MinTier {
					t.Fatalf("deferred with route action %q, min tier %s; Envoy's route gives %q, %s", lr.RouteAction, lr.MinTier, sr.RouteAction, sr.MinTier)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			Same(t, &want, &got)
		})
	}
}

// Same fails t unless two decisions agree on everything but their ids,
// times, sources and trace.
func Same(t *testing.T, want, got *engine.Decision) {
	t.Helper()
	type view struct {
		Effect, Reason, Message, Policy, Rule, AgentID, AgentName, Action, Resource, Revision string
		Status                                                                                int
		Tier                                                                                  trust.Tier
		Chain                                                                                 string
	}
	v := func(d *engine.Decision) view {
		return view{d.Effect, d.Reason, d.Message, d.Policy, d.Rule, d.AgentID, d.AgentName, d.Action, d.Resource, d.Revision,
			d.Status, d.Tier, strings.Join(d.Chain, ",")}
	}
	if v(want) != v(got) {
		t.Fatalf("decisions differ\nserver: %+v\nfilter: %+v", v(want), v(got))
	}
}

// TestTokenCacheRespectsExp: a verified token is cached, and the cache
// never answers for it after its exp.
func TestTokenCacheRespectsExp(t *testing.T) {
	env := filtertest.New(t)
	// 10 s, then 45 s on: past exp and its 30 s leeway, but within the
	// cache's own one-minute bound, so only exp can turn it away.
	short, _, err := env.F.Issuer.Issue(env.Orch, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := filterconfig.Parse(env.Config())
	if err != nil {
		t.Fatal(err)
	}
	now := filtertest.Now
	local, err := filterdecider.New(cfg, filterdecider.Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	check := func() engine.Decision {
		r := engine.Request{Method: "GET", Host: "docs.mesh", Path: "/docs", Token: short}
		d, err := local.Check(context.Background(), &r)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	if d := check(); !d.Allowed || local.CachedTokens() != 1 {
		t.Fatalf("first: %s, %d cached", d.Reason, local.CachedTokens())
	}
	now = now.Add(45 * time.Second)
	if d := check(); d.Allowed || d.Status != 401 || !strings.Contains(d.Message, "expired") {
		t.Fatalf("after exp: %d %s", d.Status, d.Message)
	}
}
