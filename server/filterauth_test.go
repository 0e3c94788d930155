package server

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/client"
	"github.com/meshguard/meshguard/filterprotocol"
)

// TestFilterRoutesRefuseEveryOtherCredential: every /v1/filter/* route
// (the API's own list, so a new one without a row fails) refuses with a
// 401 whatever is not a proxy's filter credential in
// X-MeshGuard-Filter-Token — none, an agent token, the admin token, the
// placeholder the shared configuration carries, the credential every
// proxy shared once, a minted one renamed to another proxy or a byte off,
// the right one in another header — and acts on none of them: a refused
// audit batch or deferred check stores no record. The proxy's minted
// credential then gets a 2xx on every row.
func TestFilterRoutesRefuseEveryOtherCredential(t *testing.T) {
	r, routes := startAuthTest(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	base := "http://" + r.addrs.HTTP

	reader := r.agent(t, "reader", "reader")
	minted := watchFilterConfig(ctx, t, r, "envoy-filter-auth")().MeshGuard.Token
	doc, err := r.admin.FilterConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var shared struct{ MeshGuard struct{ Token string } }
	if err := json.Unmarshal(doc, &shared); err != nil || shared.MeshGuard.Token == "" {
		t.Fatalf("the shared configuration's credential: %v", err)
	}
	parts := strings.Split(minted, ".")
	if len(parts) != 3 {
		t.Fatalf("a minted credential of %d parts", len(parts))
	}
	renamed := "mgf2_" + base64.RawURLEncoding.EncodeToString([]byte("other-proxy")) + "." + parts[1] + "." + parts[2]

	// Each row acts under its own action, so what a refused request would
	// have recorded is found by it.
	const auditAction, checkAction = "read:filter-auth-audit", "read:filter-auth-check"
	record := audit.Record{Timestamp: time.Now(), DecisionID: "dec_filter_auth", Action: auditAction, Method: "GET", Path: "/docs/a",
		Host: "docs.internal", Decision: "deny", Status: 403, Reason: "no_matching_rule", Source: "wasm", Mode: "enforce"}
	batch, err := json.Marshal(filterprotocol.AuditBatch{Records: []audit.Record{record}})
	if err != nil {
		t.Fatal(err)
	}
	check, err := json.Marshal(filterprotocol.DeferredCheck{Method: "GET", Host: "docs.internal", Path: "/docs/a", Token: reader, RouteAction: checkAction})
	if err != nil {
		t.Fatal(err)
	}
	rows := []routeRequest{
		{route: "GET " + filterprotocol.ConfigPath, method: "GET", path: filterprotocol.ConfigPath},
		{route: "POST " + filterprotocol.CheckPath, method: "POST", path: filterprotocol.CheckPath, body: string(check)},
		{route: "POST " + filterprotocol.AuditPath, method: "POST", path: filterprotocol.AuditPath, body: string(batch)},
	}
	checkRows(t, routes, "/v1/filter/", rows)

	inFilterHeader := func(tok string) map[string]string { return map[string]string{filterprotocol.HeaderFilterToken: tok} }
	refused := []credential{
		{"no credential", nil},
		{"an empty credential", inFilterHeader("")},
		{"a made-up credential", inFilterHeader("mgf2_" + base64.RawURLEncoding.EncodeToString([]byte(testProxyName)) + ".AAAA.AAAA")},
		{"a minted credential with its MAC's last digit changed", inFilterHeader(minted[:len(minted)-1] + otherHexDigit(minted[len(minted)-1:]))},
		{"an agent token", inFilterHeader(reader)},
		{"an agent token as a bearer token", map[string]string{"Authorization": "Bearer " + reader}},
		{"the admin token", inFilterHeader(authTestAdminToken)},
		{"the admin token as the admin token", map[string]string{"X-Admin-Token": authTestAdminToken}},
		{"the shared configuration's placeholder", inFilterHeader(shared.MeshGuard.Token)},
		{"the credential every proxy shared once", inFilterHeader(legacyFilterToken(authTestAdminToken))},
		{"a minted credential renamed to another proxy", inFilterHeader(renamed)},
		{"a minted credential and a byte more", inFilterHeader(minted + "A")},
		{"a minted credential but its last byte", inFilterHeader(minted[:len(minted)-1])},
		{"a minted credential as a bearer token", map[string]string{"Authorization": "Bearer " + minted}},
		{"a minted credential as the admin token", map[string]string{"X-Admin-Token": minted}},
	}
	for _, row := range rows {
		t.Run(row.route, func(t *testing.T) {
			for _, c := range refused {
				code, body := send(t, base, row, c.headers)
				if e := decodeError(body); code != http.StatusUnauthorized || e.Error != "unauthorized" {
					t.Errorf("%s: %d %.200s, want 401 unauthorized", c.name, code, body)
				}
			}
		})
	}

	// The minted credential is let through; what it sends is recorded.
	for _, row := range rows {
		if code, body := send(t, base, row, inFilterHeader(minted)); code < 200 || code > 299 {
			t.Fatalf("%s %s with the minted credential: %d %.300s, want a 2xx", row.method, row.path, code, body)
		}
	}
	// The audit trail stores records in the order they were queued: once
	// the accepted ones are stored, anything a refused request had queued
	// before them is too.
	recorded := func(action string) []audit.Record {
		page, err := r.admin.QueryAudit(ctx, client.AuditFilter{Action: action})
		if err != nil {
			t.Fatal(err)
		}
		return page.Records
	}
	eventually(t, "the accepted batch and check stored", func() bool {
		return len(recorded(auditAction)) > 0 && len(recorded(checkAction)) > 0
	})
	for _, action := range []string{auditAction, checkAction} {
		got := recorded(action)
		if len(got) != 1 || got[0].Proxy != testProxyName || got[0].Source != "wasm" {
			t.Errorf("records of %s: %d (%+v), want the one the minted credential sent", action, len(got), got)
		}
	}
}

// otherHexDigit is a hex digit other than d.
func otherHexDigit(d string) string {
	if d == "0" {
		return "1"
	}
	return "0"
}
