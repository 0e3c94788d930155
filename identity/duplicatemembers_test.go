package identity

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// memberCase is one token whose header or claims spell a member twice (or
// in another case), built from valid parts: extra raw members are appended
// to the JSON object, so encoding/json, which keeps the last, reads the
// extra value, and a reader that keeps the first reads the original.
type memberCase struct {
	name        string
	hdrDrop     string // a member removed from the header before extra is added
	hdrExtra    string
	claimsDrop  string
	claimsExtra string
	want        string // "" for a valid token; else the refusal's wording
}

const (
	wantTwice = "appears twice"
	wantCase  = "differs only in case"
)

// appendMembers returns obj as JSON with drop removed and extra appended
// inside its braces.
func appendMembers(t *testing.T, obj map[string]any, drop, extra string) []byte {
	t.Helper()
	delete(obj, drop)
	b, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	if extra == "" {
		return b
	}
	return append(append(b[:len(b)-1:len(b)-1], ","+extra...), '}')
}

func checkMemberRefusal(t *testing.T, tc memberCase, tok string, err error) {
	t.Helper()
	if tc.want == "" {
		if err != nil {
			t.Fatalf("the valid control token was refused: %v", err)
		}
		return
	}
	if !errors.Is(err, ErrTokenMalformed) || !errors.Is(err, ErrInvalidToken) || !strings.Contains(err.Error(), tc.want) {
		t.Fatalf("got %v; want ErrTokenMalformed saying %q", err, tc.want)
	}
	assertNoLeak(t, err, tok)
}

// TestAgentTokenDuplicateMembers: an agent token whose header or claims
// name a member twice, or spell one MeshGuard reads in another case, is
// refused, whichever copy would win.
func TestAgentTokenDuplicateMembers(t *testing.T) {
	for _, alg := range []string{AlgEdDSA, AlgES256} {
		e := newTestEnv(t, alg)
		other := NewAgentID() // a real agent that only a duplicate sub could name
		a := e.agent
		a.ID = other
		e.agents.put(a)
		kid := e.current(t).kid
		later := e.clock.Now().Add(48 * time.Hour).Unix()
		tests := []memberCase{
			{name: "valid control"},
			{name: "alg twice, same value", hdrExtra: `"alg":"` + alg + `"`, want: wantTwice},
			{name: "alg twice, then none", hdrExtra: `"alg":"none"`, want: wantTwice},
			{name: "alg twice, then HS256", hdrExtra: `"alg":"HS256"`, want: wantTwice},
			{name: "kid twice, same value", hdrExtra: `"kid":"` + kid + `"`, want: wantTwice},
			{name: "kid twice, then unknown", hdrExtra: `"kid":"other"`, want: wantTwice},
			{name: "typ twice", hdrExtra: `"typ":"JWT"`, want: wantTwice},
			// ALG is no header parameter MeshGuard accepts in any company.
			{name: "alg and ALG", hdrExtra: `"ALG":"` + alg + `"`, want: "unsupported header parameter"},
			{name: "sub twice, then another agent", claimsExtra: `"sub":"` + other + `"`, want: wantTwice},
			{name: "sub twice, escaped", claimsExtra: `"\u0073ub":"` + other + `"`, want: wantTwice},
			{name: "sub and SUB", claimsExtra: `"SUB":"` + other + `"`, want: wantTwice},
			{name: "sub and long-s ſub", claimsExtra: `"ſub":"` + other + `"`, want: wantTwice},
			{name: "exp twice, then later", claimsExtra: `"exp":` + jsonInt(later), want: wantTwice},
			{name: "iat twice", claimsExtra: `"iat":` + jsonInt(e.clock.Now().Unix()), want: wantTwice},
			{name: "nbf twice", claimsExtra: `"nbf":` + jsonInt(e.clock.Now().Unix()), want: wantTwice},
			{name: "aud twice", claimsExtra: `"aud":"meshguard"`, want: wantTwice},
			{name: "iss twice", claimsExtra: `"iss":"meshguard"`, want: wantTwice},
			{name: "tier twice, then privileged", claimsExtra: `"tier":"privileged"`, want: wantTwice},
			{name: "jti twice", claimsExtra: `"jti":"another"`, want: wantTwice},
			{name: "tags twice", claimsExtra: `"tags":["admin"]`, want: wantTwice},
			{name: "an unknown claim twice", claimsExtra: `"x":1,"x":2`, want: wantTwice},
			{name: "sub twice, after many claims", claimsExtra: manyClaims(20) + `,"SUB":"` + other + `"`, want: wantTwice},
			{name: "many claims, none twice", claimsExtra: manyClaims(40)},
			{name: "a member twice in a nested object", claimsExtra: `"x":{"a":1,"a":2}`, want: wantTwice},
			{name: "exp spelt Exp", claimsDrop: "exp", claimsExtra: `"Exp":` + jsonInt(later), want: wantCase},
			{name: "tier spelt TIER", claimsDrop: "tier", claimsExtra: `"TIER":"trusted"`, want: wantCase},
		}
		for _, tc := range tests {
			t.Run(alg+"/"+tc.name, func(t *testing.T) {
				hdr := appendMembers(t, e.header(t), tc.hdrDrop, tc.hdrExtra)
				claims := appendMembers(t, e.claims(), tc.claimsDrop, tc.claimsExtra)
				tok := signRaw(t, e.current(t), nil, hdr, claims)
				_, err := e.verifier.Verify(context.Background(), tok)
				checkMemberRefusal(t, tc, tok, err)
			})
		}
	}
}

// TestDelegationTokenDuplicateMembers: the same for delegation tokens,
// including inside the nested act claims.
func TestDelegationTokenDuplicateMembers(t *testing.T) {
	e := newTestEnv(t, AlgEdDSA)
	now := e.clock.Now().Unix()
	actor, other := NewAgentID(), NewAgentID()
	tests := []memberCase{
		{name: "valid control"},
		{name: "alg twice", hdrExtra: `"alg":"EdDSA"`, want: wantTwice},
		{name: "kid twice", hdrExtra: `"kid":"other"`, want: wantTwice},
		{name: "typ twice, then JWT", hdrExtra: `"typ":"JWT"`, want: wantTwice},
		{name: "sub (root) twice", claimsExtra: `"sub":"` + other + `"`, want: wantTwice},
		{name: "act twice, then another actor", claimsExtra: `"act":{"sub":"` + other + `"}`, want: wantTwice},
		{name: "sub twice inside act", claimsDrop: "act", claimsExtra: `"act":{"sub":"` + actor + `","sub":"` + other + `"}`, want: wantTwice},
		{name: "act twice inside act", claimsDrop: "act", claimsExtra: `"act":{"sub":"` + actor + `","act":{"sub":"` + other + `"},"act":{"sub":"` + e.agent.ID + `"}}`, want: wantTwice},
		{name: "aud twice", claimsExtra: `"aud":"meshguard:delegation"`, want: wantTwice},
		{name: "exp twice", claimsExtra: `"exp":` + jsonInt(now+3000), want: wantTwice},
		{name: "iat twice", claimsExtra: `"iat":` + jsonInt(now), want: wantTwice},
		{name: "jti twice", claimsExtra: `"jti":"j2"`, want: wantTwice},
		{name: "scope twice, then wider", claimsExtra: `"scope":"*"`, want: wantTwice},
		{name: "max_chain twice", claimsExtra: `"max_chain":16`, want: wantTwice},
		{name: "act and ACT", claimsExtra: `"ACT":{"sub":"` + other + `"}`, want: wantTwice},
		{name: "scope spelt Scope", claimsDrop: "scope", claimsExtra: `"Scope":"*"`, want: wantCase},
		{name: "sub spelt Sub inside act", claimsDrop: "act", claimsExtra: `"act":{"Sub":"` + actor + `"}`, want: wantCase},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := e.header(t)
			h["typ"] = typDelegation
			c := map[string]any{"iss": DefaultIssuer, "aud": DefaultAudience + DelegationAudienceSuffix, "sub": e.agent.ID,
				"act": map[string]any{"sub": actor}, "scope": "read:*", "max_chain": 2, "iat": now, "exp": now + 600, "jti": "j1"}
			tok := signRaw(t, e.current(t), nil, appendMembers(t, h, tc.hdrDrop, tc.hdrExtra), appendMembers(t, c, tc.claimsDrop, tc.claimsExtra))
			_, err := e.verifier.VerifyDelegation(tok)
			checkMemberRefusal(t, tc, tok, err)
		})
	}
}

func jsonInt(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// manyClaims returns n distinct unknown claims, so an object outgrows the
// scanner's small list of names.
func manyClaims(n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fmt.Sprintf(`"x%d":%d`, i, i)
	}
	return strings.Join(parts, ",")
}
