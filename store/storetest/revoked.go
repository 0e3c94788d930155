package storetest

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/meshguard/meshguard/identity"
	"github.com/meshguard/meshguard/store"
)

// revokedTests cover the revoked-token list.
func revokedTests() []test {
	return []test{
		{"RevokeToken", testRevokeToken},
		{"RevokeToken/Idempotent", testRevokeTokenTwice},
		{"RevokeToken/Invalid", testRevokeTokenInvalid},
		{"ListRevokedTokens/Live", testRevokedLive},
		{"ListRevokedTokens/Pages", testRevokedPages},
	}
}

func revocation(jti, agent string, exp time.Time, reason string) identity.RevokedToken {
	return identity.RevokedToken{JTI: jti, AgentID: agent, ExpiresAt: exp, Reason: reason}
}

func mustRevoke(t *testing.T, b Backend, r identity.RevokedToken) identity.RevokedToken {
	t.Helper()
	got, created, err := b.RevokeToken(t.Context(), r)
	if err != nil || !created {
		t.Fatalf("RevokeToken(%s) = %v, %v; want a new revocation", r.JTI, created, err)
	}
	return got
}

func mustListRevoked(t *testing.T, b Backend) []identity.RevokedToken {
	t.Helper()
	got, err := b.ListRevokedTokens(t.Context(), "", identity.MaxRevokedTokens)
	if err != nil {
		t.Fatalf("ListRevokedTokens: %v", err)
	}
	return got
}

// testRevokeToken: a revocation is stored as given, stamped with now,
// times in UTC to the microsecond, and survives a reopen.
func testRevokeToken(t *testing.T, open func(*testing.T) Backend) {
	b := open(t)
	if got := mustListRevoked(t, b); got == nil || len(got) != 0 {
		t.Fatalf("empty store: %#v, want an empty, non-nil list", got)
	}
	agent := identity.NewAgentID()
	exp := time.Now().Add(time.Hour).In(time.FixedZone("CET", 3600))
	before := time.Now().UTC().Truncate(time.Microsecond)
	got := mustRevoke(t, b, revocation("jti-1", agent, exp, "leaked in a CI log"))
	after := time.Now()
	want := identity.RevokedToken{JTI: "jti-1", AgentID: agent, ExpiresAt: us(exp), RevokedAt: got.RevokedAt, Reason: "leaked in a CI log"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("RevokeToken returned (-want +got):\n%s", diff)
	}
	if got.RevokedAt.Before(before) || got.RevokedAt.After(after) || got.RevokedAt.Location() != time.UTC {
		t.Errorf("RevokedAt = %v, want now (%v..%v) in UTC", got.RevokedAt, before, after)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b = openClosed(t, open)
	if diff := cmp.Diff([]identity.RevokedToken{got}, mustListRevoked(t, b)); diff != "" {
		t.Errorf("after reopening (-want +got):\n%s", diff)
	}
}

// testRevokeTokenTwice: revoking a jti again returns the first revocation
// (created false), with its reason and time; with a later exp (another
// token with the jti, e.g. re-signed with JWT_SECRET) the revocation
// lasts until that exp, an earlier one changes nothing. Naming another
// agent is a conflict.
func testRevokeTokenTwice(t *testing.T, open func(*testing.T) Backend) {
	b := openClosed(t, open)
	agent := identity.NewAgentID()
	first := mustRevoke(t, b, revocation("jti-1", agent, time.Now().Add(time.Hour), "first"))
	later := time.Now().Add(48 * time.Hour)
	again, created, err := b.RevokeToken(t.Context(), revocation("jti-1", agent, later, "second"))
	if err != nil || created {
		t.Fatalf("revoking again = %v, %v; want created false and no error", created, err)
	}
	extended := first
	extended.ExpiresAt = us(later)
	if diff := cmp.Diff(extended, again); diff != "" {
		t.Errorf("revoking again with a later exp returned (-want +got):\n%s", diff)
	}
	again, created, err = b.RevokeToken(t.Context(), revocation("jti-1", agent, time.Now().Add(time.Minute), "third"))
	if err != nil || created {
		t.Fatalf("revoking again with an earlier exp = %v, %v; want created false and no error", created, err)
	}
	if diff := cmp.Diff(extended, again); diff != "" {
		t.Errorf("revoking again with an earlier exp returned (-want +got):\n%s", diff)
	}
	_, created, err = b.RevokeToken(t.Context(), revocation("jti-1", identity.NewAgentID(), time.Now().Add(time.Hour), ""))
	wantErr(t, err, identity.ErrConflict, "revoking the jti as another agent's")
	if created {
		t.Error("a conflict reported created")
	}
	if diff := cmp.Diff([]identity.RevokedToken{extended}, mustListRevoked(t, b)); diff != "" {
		t.Errorf("stored after the repeats (-want +got):\n%s", diff)
	}
}

// testRevokeTokenInvalid: a revocation that is not valid is refused with
// ErrInvalidRevocation and stores nothing.
func testRevokeTokenInvalid(t *testing.T, open func(*testing.T) Backend) {
	b := openClosed(t, open)
	agent := identity.NewAgentID()
	exp := time.Now().Add(time.Hour)
	for _, r := range []identity.RevokedToken{
		revocation("", agent, exp, ""),
		revocation(strings.Repeat("j", 257), agent, exp, ""),
		revocation("two words", agent, exp, ""),
		revocation("jti\x00", agent, exp, ""),
		revocation("jti", "not-an-agent", exp, ""),
		revocation("jti", "", exp, ""),
		revocation("jti", agent, time.Time{}, ""),
		revocation("jti", agent, exp, strings.Repeat("r", identity.MaxRevocationReasonLen+1)),
		revocation("jti", agent, exp, "line\nbreak"),
	} {
		_, created, err := b.RevokeToken(t.Context(), r)
		wantErr(t, err, identity.ErrInvalidRevocation, fmt.Sprintf("RevokeToken(%q, %q, reason %.20q)", r.JTI, r.AgentID, r.Reason))
		if created {
			t.Errorf("RevokeToken(%q) refused but reported created", r.JTI)
		}
	}
	if got := mustListRevoked(t, b); len(got) != 0 {
		t.Errorf("refused revocations were stored: %+v", got)
	}
}

// testRevokedLive: a revocation whose token has expired, beyond the
// verifier's leeway, is not listed; one still inside it is.
func testRevokedLive(t *testing.T, open func(*testing.T) Backend) {
	b := openClosed(t, open)
	agent := identity.NewAgentID()
	now := time.Now()
	mustRevoke(t, b, revocation("in-leeway", agent, now.Add(-identity.Leeway+time.Minute), ""))
	mustRevoke(t, b, revocation("live", agent, now.Add(time.Hour), ""))
	// Last, so no later write has pruned it: the list itself must leave
	// it out.
	mustRevoke(t, b, revocation("dead", agent, now.Add(-identity.Leeway-time.Minute), ""))
	var jtis []string
	for _, r := range mustListRevoked(t, b) {
		jtis = append(jtis, r.JTI)
	}
	if diff := cmp.Diff([]string{"in-leeway", "live"}, jtis); diff != "" {
		t.Errorf("listed (-want +got):\n%s", diff)
	}
}

// testRevokedPages: the list is in byte-wise jti order, paged by after and
// limit; a limit outside 1..MaxRevokedTokens is ErrInvalidFilter.
func testRevokedPages(t *testing.T, open func(*testing.T) Backend) {
	b := openClosed(t, open)
	agent := identity.NewAgentID()
	for _, jti := range []string{"b", "a", "Z", "c"} {
		mustRevoke(t, b, revocation(jti, agent, time.Now().Add(time.Hour), ""))
	}
	var got []string
	after := ""
	for {
		page, err := b.ListRevokedTokens(t.Context(), after, 3)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range page {
			got = append(got, r.JTI)
		}
		if len(page) < 3 {
			break
		}
		after = page[len(page)-1].JTI
	}
	if diff := cmp.Diff([]string{"Z", "a", "b", "c"}, got); diff != "" {
		t.Errorf("pages (-want +got):\n%s", diff)
	}
	for _, limit := range []int{0, -1, identity.MaxRevokedTokens + 1} {
		_, err := b.ListRevokedTokens(t.Context(), "", limit)
		if !errors.Is(err, store.ErrInvalidFilter) {
			t.Errorf("limit %d: %v, want ErrInvalidFilter", limit, err)
		}
	}
}
