package admin_test

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/meshguard/meshguard/api"
	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/engine/enginetest"
	"github.com/meshguard/meshguard/identity"
	"github.com/meshguard/meshguard/policy"
	"github.com/meshguard/meshguard/trust"
)

// revokedList is every revoked token the API lists.
func revokedList(t *testing.T, e *env) []api.Revocation {
	t.Helper()
	page, err := e.c.ListRevokedTokens(t.Context(), "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	return page.Tokens
}

// TestRevokeTokenByToken: the leaked token itself revokes it. A
// verification the cache holds is refused from the next request on, as
// is the token at /v1/check (token_revoked); the agent's other token works
// on. Revoking again changes nothing but, by jti, the exp. The token is in no
// answer (and the log fails the test if it reaches it, testWriter).
func TestRevokeTokenByToken(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	ag := e.agent(t, "leaky", trust.Verified, "emailer")
	leaked := ag.Token
	other, err := e.c.IssueToken(ctx, ag.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	claims := verify(t, e, leaked).Claims
	if _, err := e.f.Cached.Verify(ctx, leaked); err != nil { // cached now
		t.Fatal(err)
	}
	if d, err := e.as(leaked).Check(ctx, api.CheckRequest{Action: "read:docs"}); err != nil || !d.Allowed {
		t.Fatalf("before: %+v, %v", d, err)
	}

	code, _, body := e.raw(t, "POST", "/admin/tokens/revoke", strings.NewReader(`{"token":"`+leaked+`","reason":"pasted in a ticket"}`), adminHeaders(nil))
	if code != http.StatusCreated || strings.Contains(string(body), leaked) {
		t.Fatalf("revoke: %d %s; want 201 without the token", code, body)
	}
	want := []api.Revocation{{JTI: claims.ID, AgentID: ag.ID, ExpiresAt: claims.ExpiresAt, Reason: "pasted in a ticket"}}
	got := revokedList(t, e)
	if diff := cmp.Diff(want, got, cmpIgnoreRevokedAt); diff != "" {
		t.Fatalf("listed (-want +got):\n%s", diff)
	}

	if _, err := e.f.Cached.Verify(ctx, leaked); !errors.Is(err, identity.ErrTokenRevoked) {
		t.Errorf("the cached verification after the revocation: %v, want ErrTokenRevoked", err)
	}
	// A denial is an error of the client too; the decision is in d.
	d, err := e.as(leaked).Check(ctx, api.CheckRequest{Action: "read:docs"})
	if d.Allowed || d.Status != 401 || d.Reason != engine.ReasonTokenRevoked {
		t.Errorf("/v1/check with the revoked token: %+v, %v; want 401 %s", d, err, engine.ReasonTokenRevoked)
	}
	if d, err := e.as(other.Token).Check(ctx, api.CheckRequest{Action: "read:docs"}); err != nil || !d.Allowed {
		t.Errorf("the agent's other token: %+v, %v; want it allowed", d, err)
	}

	r, err := e.c.RevokeToken(ctx, api.RevokeTokenRequest{Token: leaked})
	if err != nil || r.Created || r.JTI != claims.ID || r.Reason != "pasted in a ticket" {
		t.Errorf("revoking again: %+v, %v; want the first revocation, created false", r, err)
	}
	if diff := cmp.Diff(got, revokedList(t, e)); diff != "" {
		t.Errorf("revoking again changed the list (-before +after):\n%s", diff)
	}
	// By jti, the exp is unknown: the revocation lasts the longer of the
	// two, the first one's reason and time kept.
	r, err = e.c.RevokeToken(ctx, api.RevokeTokenRequest{JTI: claims.ID, AgentID: ag.ID, Reason: "again"})
	if err != nil || r.Created || r.Reason != "pasted in a ticket" || !r.RevokedAt.Equal(got[0].RevokedAt) || !r.ExpiresAt.After(claims.ExpiresAt) {
		t.Errorf("revoking again by jti: %+v, %v; want the first revocation until a later exp, created false", r, err)
	}
}

var cmpIgnoreRevokedAt = cmp.Comparer(func(a, b api.Revocation) bool {
	a.RevokedAt, b.RevokedAt = time.Time{}, time.Time{}
	return a.JTI == b.JTI && a.AgentID == b.AgentID && a.ExpiresAt.Equal(b.ExpiresAt) && a.Reason == b.Reason
})

// TestRevokeTokenByJTI: a jti and its agent revoke the token (its exp
// unknown, so the longest a token accepted now could live), without the
// token in hand.
func TestRevokeTokenByJTI(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	ag := e.agent(t, "leaky", trust.Verified, "emailer")
	claims := verify(t, e, ag.Token).Claims
	before := time.Now()
	r, err := e.c.RevokeToken(ctx, api.RevokeTokenRequest{JTI: claims.ID, AgentID: ag.ID})
	if err != nil || !r.Created || r.JTI != claims.ID || r.AgentID != ag.ID {
		t.Fatalf("RevokeToken = %+v, %v", r, err)
	}
	// A token accepted now may have an iat up to the leeway ahead.
	if max := identity.Leeway + e.f.Keys.Keyring().MaxTTL(); r.ExpiresAt.Before(before.Add(max).Truncate(time.Microsecond)) {
		t.Errorf("expiresAt %v: want the longest lifetime from the leeway ahead of now (%v)", r.ExpiresAt, before.Add(max))
	}
	if d, err := e.as(ag.Token).Check(ctx, api.CheckRequest{Action: "read:docs"}); d.Allowed || d.Status != 401 || d.Reason != engine.ReasonTokenRevoked {
		t.Errorf("/v1/check: %+v, %v; want 401 %s", d, err, engine.ReasonTokenRevoked)
	}
}

// TestRevokeTokenRefusesBadInput: every body that does not name one token
// MeshGuard signed gets a 4xx that says what is wrong, never quotes the
// token, and stores nothing.
func TestRevokeTokenRefusesBadInput(t *testing.T) {
	e := newEnv(t)
	ag := e.agent(t, "leaky", trust.Verified, "emailer")
	claims := verify(t, e, ag.Token).Claims
	stranger := enginetest.New(t, "", enginetest.Options{})
	_, foreign := stranger.Agent(t, "elsewhere", trust.Verified, nil)
	delegation, _, err := e.f.Issuer.Delegate(identity.DelegationGrant{Root: ag.ID, Actors: []string{identity.NewAgentID()}, ExpiresAt: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(ag.Token, ".")
	forged := parts[0] + "." + parts[1] + "." + strings.Repeat("A", len(parts[2]))

	tests := []struct {
		name   string
		body   string
		status int
		want   string // in the message
	}{
		{"another MeshGuard's token", `{"token":"` + foreign + `"}`, 400, "not an agent token MeshGuard signed"},
		{"a forged signature", `{"token":"` + forged + `"}`, 400, "signature"},
		{"a malformed token", `{"token":"eyJhbGciOiJFZERTQSJ9.bm90.anNvbg"}`, 400, "not an agent token MeshGuard signed"},
		{"not a token at all", `{"token":"hunter2"}`, 400, "malformed"},
		{"a delegation token", `{"token":"` + delegation + `"}`, 400, "typ must be JWT"},
		{"both forms", `{"token":"` + ag.Token + `","jti":"` + claims.ID + `","agentId":"` + ag.ID + `"}`, 400, "not both"},
		{"neither", `{}`, 400, "give the token to revoke"},
		{"only a reason", `{"reason":"leaked"}`, 400, "give the token to revoke"},
		{"an unknown field", `{"jwt":"` + ag.Token + `"}`, 400, `unknown field "jwt"`},
		{"a field in another case", `{"Token":"` + ag.Token + `"}`, 400, `unknown field "Token"`},
		{"a jti without agentId", `{"jti":"` + claims.ID + `"}`, 400, "agentId"},
		{"an agentId without jti", `{"agentId":"` + ag.ID + `"}`, 400, "jti"},
		{"a jti with a space", `{"jti":"a b","agentId":"` + ag.ID + `"}`, 400, "jti: expected 1 to 256 visible ASCII"},
		{"a jti with a newline", `{"jti":"a\nb","agentId":"` + ag.ID + `"}`, 400, "jti: expected"},
		{"a jti too long", `{"jti":"` + strings.Repeat("j", 257) + `","agentId":"` + ag.ID + `"}`, 400, "jti: expected"},
		{"an agentId that is no id", `{"jti":"` + claims.ID + `","agentId":"leaky"}`, 400, "agentId: expected an agent id"},
		{"an agent that does not exist", `{"jti":"` + claims.ID + `","agentId":"` + identity.NewAgentID() + `"}`, 404, "agent"},
		{"a reason with a control character", `{"token":"` + ag.Token + `","reason":"a\u0007b"}`, 400, "reason"},
		{"a reason too long", `{"token":"` + ag.Token + `","reason":"` + strings.Repeat("r", identity.MaxRevocationReasonLen+1) + `"}`, 400, "reason"},
		{"a jti as a number", `{"jti":42,"agentId":"` + ag.ID + `"}`, 400, "jti"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, body := e.raw(t, "POST", "/admin/tokens/revoke", strings.NewReader(tt.body), adminHeaders(nil))
			b := errorBody(t, body)
			if code != tt.status || !strings.Contains(b.Message, tt.want) {
				t.Errorf("%d %s; want %d mentioning %q", code, body, tt.status, tt.want)
			}
			for _, tok := range []string{ag.Token, foreign, forged, delegation} {
				if strings.Contains(string(body), tok) {
					t.Errorf("the answer quotes a token: %s", body)
				}
			}
		})
	}
	if got := revokedList(t, e); len(got) != 0 {
		t.Errorf("refused requests stored revocations: %+v", got)
	}
	if _, err := e.f.Cached.Verify(t.Context(), ag.Token); err != nil {
		t.Errorf("the token no request revoked: %v", err)
	}
}

// TestListRevokedTokens: pages in jti order, no token material, and a
// query it does not understand is refused.
func TestListRevokedTokens(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	ag := e.agent(t, "leaky", trust.Verified)
	var jtis []string
	for i := range 3 {
		tok, err := e.c.IssueToken(ctx, ag.ID, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		r, err := e.c.RevokeToken(ctx, api.RevokeTokenRequest{Token: tok.Token, Reason: fmt.Sprint("n", i)})
		if err != nil {
			t.Fatal(err)
		}
		jtis = append(jtis, r.JTI)
	}
	var got []string
	for after := ""; ; {
		page, err := e.c.ListRevokedTokens(ctx, after, 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range page.Tokens {
			got = append(got, r.JTI)
		}
		if page.Next == "" {
			break
		}
		after = page.Next
	}
	if diff := cmp.Diff(slices.Sorted(slices.Values(jtis)), got); diff != "" {
		t.Errorf("paged (-want +got):\n%s", diff)
	}
	code, _, body := e.raw(t, "GET", "/admin/tokens/revoked", nil, adminHeaders(nil))
	if code != 200 || strings.Contains(string(body), "eyJ") || strings.Contains(string(body), `"token"`) {
		t.Errorf("the list: %d %s; want 200 without token material", code, body)
	}
	for _, q := range []string{"limit=0", "limit=1001", "limit=ten", "agent=leaky", "after=a&after=b"} {
		if code, _, body := e.raw(t, "GET", "/admin/tokens/revoked?"+q, nil, adminHeaders(nil)); code != 400 {
			t.Errorf("?%s: %d %s, want 400", q, code, body)
		}
	}
}

// TestDelegationsOfARevokedToken: a leaked token, once revoked, mints no
// delegation (401 token_revoked, as at /v1/check), and the delegations it
// minted before — to an agent whose holder may be the thief, and handed
// on from there — are refused as delegation_revoked from the next request
// on: they would otherwise let the leaked token's authority live on for
// as long as the token itself. The same agent's delegations through its
// other token keep working.
func TestDelegationsOfARevokedToken(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	orch := e.agent(t, "orchestrator", trust.Trusted, "orchestrator")
	res := e.agent(t, "researcher", trust.Verified, "researcher")
	mail := e.agent(t, "emailer", trust.Verified, "emailer")
	other, err := e.c.IssueToken(ctx, orch.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	leaked := orch.Token
	toRes, err := e.as(leaked).Delegate(ctx, api.DelegationRequest{Delegate: "researcher", Actions: []string{"read:*", "write:email"}, MaxDepth: 2})
	if err != nil {
		t.Fatal(err)
	}
	toMail, err := e.as(res.Token).Delegate(ctx, api.DelegationRequest{Delegate: mail.ID, Actions: []string{"write:email"}, Parent: toRes.Token})
	if err != nil {
		t.Fatal(err)
	}
	kept, err := e.as(other.Token).Delegate(ctx, api.DelegationRequest{Delegate: "researcher", Actions: []string{"read:*"}})
	if err != nil {
		t.Fatal(err)
	}
	uses := []struct {
		name, token string
		req         api.CheckRequest
	}{
		{"the researcher for the orchestrator", res.Token, api.CheckRequest{Action: "read:papers", Delegation: toRes.Token}},
		{"the emailer for orchestrator → researcher", mail.Token, api.CheckRequest{Action: "write:email", Delegation: toMail.Token}},
	}
	for _, u := range uses { // cached as verified before the revocation
		if d, err := e.as(u.token).Check(ctx, u.req); err != nil || !d.Allowed {
			t.Fatalf("%s before the revocation: %+v, %v", u.name, d, err)
		}
	}

	if _, err := e.c.RevokeToken(ctx, api.RevokeTokenRequest{Token: leaked}); err != nil {
		t.Fatal(err)
	}
	_, err = e.as(leaked).Delegate(ctx, api.DelegationRequest{Delegate: "researcher", Actions: []string{"read:*"}})
	if ae := apiError(t, err, http.StatusUnauthorized); ae.Reason != engine.ReasonTokenRevoked {
		t.Errorf("minting with the revoked token: %+v, want 401 %s", ae, engine.ReasonTokenRevoked)
	}
	for _, u := range uses {
		d, err := e.as(u.token).Check(ctx, u.req)
		if d.Allowed || d.Status != http.StatusForbidden || d.Reason != policy.ReasonDelegationRevoked {
			t.Errorf("%s after the revocation: %+v, %v; want 403 %s", u.name, d, err, policy.ReasonDelegationRevoked)
		}
	}
	_, err = e.as(res.Token).Delegate(ctx, api.DelegationRequest{Delegate: mail.ID, Actions: []string{"write:email"}, Parent: toRes.Token})
	if ae := apiError(t, err, http.StatusForbidden); ae.Reason != policy.ReasonDelegationRevoked {
		t.Errorf("handing on the revoked token's delegation: %+v, want 403 %s", ae, policy.ReasonDelegationRevoked)
	}
	if d, err := e.as(res.Token).Check(ctx, api.CheckRequest{Action: "read:papers", Delegation: kept.Token}); err != nil || !d.Allowed {
		t.Errorf("the delegation minted with the agent's other token: %+v, %v; want it allowed", d, err)
	}
}
