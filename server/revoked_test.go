package server

import (
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	_ "modernc.org/sqlite" // the driver, to break the store under a stopped server

	"github.com/meshguard/meshguard/api"
	"github.com/meshguard/meshguard/client"
	"github.com/meshguard/meshguard/config"
	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/filterconfig"
	"github.com/meshguard/meshguard/store/pgtest"
)

// denyReason is the reason of an ext_authz denial ("" for an allow).
func denyReason(t *testing.T, r *running, token string) (int32, string) {
	t.Helper()
	resp := r.check(t, token, "GET", "/docs/a")
	if codes.Code(resp.GetStatus().GetCode()) == codes.OK {
		return 200, ""
	}
	var body struct {
		Reason string `json:"reason"`
	}
	_ = json.Unmarshal([]byte(resp.GetDeniedResponse().GetBody()), &body)
	return int32(resp.GetDeniedResponse().GetStatus().GetCode()), body.Reason
}

// viaGateway is the gateway's status and reason for a GET with token.
func viaGateway(t *testing.T, r *running, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+r.addrs.HTTP+"/proxy/docs/a", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	var b struct {
		Reason string `json:"reason"`
	}
	_ = json.Unmarshal(body, &b)
	return res.StatusCode, b.Reason
}

// viaCheck is /v1/check's status and reason for token.
func viaCheck(t *testing.T, r *running, token string) (int, string) {
	t.Helper()
	c, err := client.New(client.Config{BaseURL: "http://" + r.addrs.HTTP, AgentToken: token})
	if err != nil {
		t.Fatal(err)
	}
	d, _ := c.Check(context.Background(), api.CheckRequest{Action: "read:docs"}) // a denial is an error too
	return d.Status, d.Reason
}

// TestRevokedTokenRefusedEverywhere: one token revoked through the admin
// API — verified and cached beforehand — is refused from the next
// request on by ext_authz, the gateway and /v1/check (401
// token_revoked), is in the wasm filter's configuration, and stays
// refused after a restart; the agent's other token works throughout.
func TestRevokedTokenRefusedEverywhere(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	t.Cleanup(upstream.Close)
	cfg := configWith(t, func(c *config.Config) {
		c.ProxyTarget, c.WasmFilterPath = upstream.URL, "/etc/envoy/meshguard-filter.wasm"
	})
	r := run(t, cfg)
	ctx := context.Background()
	leaked := r.agent(t, "reader", "reader")
	other, err := r.admin.IssueToken(ctx, "reader", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	points := map[string]func(token string) (int, string){
		"ext_authz": func(tok string) (int, string) { c, reason := denyReason(t, r, tok); return int(c), reason },
		"gateway":   func(tok string) (int, string) { return viaGateway(t, r, tok) },
		"/v1/check": func(tok string) (int, string) { return viaCheck(t, r, tok) },
	}
	for name, decide := range points {
		if code, reason := decide(leaked); code != 200 {
			t.Fatalf("%s before the revocation: %d %s", name, code, reason)
		}
	}
	rt, err := r.admin.RevokeToken(ctx, api.RevokeTokenRequest{Token: leaked, Reason: "leaked"})
	if err != nil || !rt.Created {
		t.Fatalf("RevokeToken = %+v, %v", rt, err)
	}
	refused := func(r *running, when string) {
		t.Helper()
		for name, decide := range points {
			if code, reason := decide(leaked); code != 401 || reason != engine.ReasonTokenRevoked {
				t.Errorf("%s %s: %d %s, want 401 %s", name, when, code, reason, engine.ReasonTokenRevoked)
			}
			if code, reason := decide(other.Token); code != 200 {
				t.Errorf("%s %s, the agent's other token: %d %s, want 200", name, when, code, reason)
			}
		}
	}
	refused(r, "after the revocation")

	// The revocation regenerates the filter's configuration in the
	// background (a fetch just before may be served from the last one):
	// wait for the configuration that has it.
	waitFor(t, "the wasm filter's configuration carrying the revoked token", func() bool {
		code, body := send(t, "http://"+r.addrs.HTTP, routeRequest{method: "GET", path: "/admin/filter/config"}, map[string]string{"X-Admin-Token": r.adminToken(t)})
		fc, err := filterconfig.Parse(body)
		if code != 200 || err != nil {
			t.Fatalf("the wasm filter's configuration: %d, %v", code, err)
		}
		return len(fc.RevokedTokens) == 1 && fc.RevokedTokens[0].JTI == rt.JTI
	})

	// Loaded again at start.
	r.stop(t)
	r = run(t, cfg)
	refused(r, "after a restart")
}

// TestStartFailsWithoutTheRevocationList: a server that cannot read the
// revoked tokens does not start (serving would let them all back in).
func TestStartFailsWithoutTheRevocationList(t *testing.T) {
	cfg := configWith(t, nil)
	r := run(t, cfg)
	r.stop(t)
	db, err := sql.Open("sqlite", filepath.Join(cfg.DataDir, "meshguard.db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`DROP TABLE revoked_tokens`); err != nil {
		t.Fatal(err)
	}
	_ = db.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready, done := make(chan Addrs, 1), make(chan error, 1)
	go func() { done <- Run(ctx, cfg, Options{Ready: ready}) }()
	select {
	case <-ready:
		cancel()
		<-done
		t.Fatal("the server started serving without its revoked-token list")
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "revoked tokens") {
			t.Fatalf("Run with the revoked-token list unreadable: %v, want a start-up error naming it", err)
		}
	}
}

// TestReplicasShareTokenRevocations: a token revoked through one replica
// is refused by the other — which verified and cached it before — through
// PostgreSQL's change feed (the periodic reload is an hour off here), and
// reaches that replica's wasm filters; so does a later exp for it.
func TestReplicasShareTokenRevocations(t *testing.T) {
	u := pgtest.NewDatabase(t)
	withDB := func(c *config.Config) { c.DatabaseURL, c.WasmFilterPath = u, "/etc/envoy/meshguard-filter.wasm" }
	a := start(t, withDB)
	b := start(t, withDB)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	token := a.agent(t, "reader", "reader")
	for range 3 {
		if code, reason := denyReason(t, b, token); code != 200 {
			t.Fatalf("the other replica before: %d %s", code, reason)
		}
	}
	configs := watchFilterConfig(ctx, t, b, "envoy-b")
	if c := configs(); len(c.RevokedTokens) != 0 {
		t.Fatalf("revoked tokens before: %+v", c.RevokedTokens)
	}
	rt, err := a.admin.RevokeToken(ctx, api.RevokeTokenRequest{Token: token})
	if err != nil {
		t.Fatal(err)
	}
	took := waitFor(t, "the other replica refusing the revoked token", func() bool {
		code, reason := denyReason(t, b, token)
		return code == 401 && reason == engine.ReasonTokenRevoked
	})
	t.Logf("the revocation reached the other replica in %v", took)
	// Wait for the push that has it (ctx bounds the wait).
	for c := configs(); len(c.RevokedTokens) != 1 || c.RevokedTokens[0].JTI != rt.JTI; c = configs() {
	}

	// Revoked again, by jti (its exp unknown, so later than the token's):
	// the other replica's filters get the later exp too, or they would
	// forget the jti before MeshGuard does.
	again, err := a.admin.RevokeToken(ctx, api.RevokeTokenRequest{JTI: rt.JTI, AgentID: rt.AgentID})
	if err != nil || again.Created || !again.ExpiresAt.After(rt.ExpiresAt) {
		t.Fatalf("revoking again by jti: %+v, %v; want created false, expiresAt after %v", again, err, rt.ExpiresAt)
	}
	for c := configs(); len(c.RevokedTokens) != 1 || c.RevokedTokens[0].Exp < again.ExpiresAt.Unix(); c = configs() {
	}
}
