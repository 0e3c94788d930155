package storetest

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/meshguard/meshguard/identity"
	"github.com/meshguard/meshguard/store"
)

// policyTests cover the stored policies of the admin API.
func policyTests() []test {
	return []test{
		{"ListPolicies/Empty", testListPoliciesEmpty},
		{"PutPolicy/RoundTrip", testPutPolicyRoundTrip},
		{"PutPolicy/Upsert", testPutPolicyUpsert},
		{"PutPolicy/Invalid", testPutPolicyInvalid},
		{"PutPolicies/Atomic", testPutPoliciesAtomic},
		{"PutPolicies/Limit", testPutPoliciesLimit},
		{"ListPolicies/Order", testListPoliciesOrder},
		{"GetPolicy/NotFound", testGetPolicyNotFound},
		{"DeletePolicy", testDeletePolicy},
		{"PutPolicy/Concurrent", testPutPolicyConcurrent},
	}
}

func mustPutPolicy(t *testing.T, b Backend, name, yaml string) store.StoredPolicy {
	t.Helper()
	p, err := b.PutPolicy(t.Context(), name, yaml)
	if err != nil {
		t.Fatalf("PutPolicy(%q): %v", name, err)
	}
	return p
}

func mustListPolicies(t *testing.T, b Backend) []store.StoredPolicy {
	t.Helper()
	ps, err := b.ListPolicies(t.Context())
	if err != nil {
		t.Fatalf("ListPolicies: %v", err)
	}
	return ps
}

func testListPoliciesEmpty(t *testing.T, open func(*testing.T) Backend) {
	b := openClosed(t, open)
	ps := mustListPolicies(t, b)
	if ps == nil || len(ps) != 0 {
		t.Errorf("ListPolicies on an empty store = %#v, want an empty, non-nil list", ps)
	}
}

func testPutPolicyRoundTrip(t *testing.T, open func(*testing.T) Backend) {
	b := openClosed(t, open)
	// Verbatim: comments, a leading document marker, trailing blanks and
	// non-ASCII text all come back byte for byte.
	yaml := "---\n# owned by the support team\nname: support\ndescription: \"Zürich ✓\"\nrules: []\n\n"
	start := time.Now()
	got := mustPutPolicy(t, b, "support", yaml)
	checkStamp(t, "CreatedAt", got.CreatedAt, start)
	if !got.UpdatedAt.Equal(got.CreatedAt) || got.Name != "support" || got.YAML != yaml {
		t.Errorf("PutPolicy = %+v", got)
	}
	read, err := b.GetPolicy(t.Context(), "support")
	if err != nil {
		t.Fatalf("GetPolicy: %v", err)
	}
	if diff := cmp.Diff(got, read); diff != "" {
		t.Errorf("GetPolicy differs from what PutPolicy returned (-put +read):\n%s", diff)
	}
	if diff := cmp.Diff([]store.StoredPolicy{got}, mustListPolicies(t, b)); diff != "" {
		t.Errorf("ListPolicies (-want +got):\n%s", diff)
	}
}

func testPutPolicyUpsert(t *testing.T, open func(*testing.T) Backend) {
	b := openClosed(t, open)
	first := mustPutPolicy(t, b, "support", "name: support\n")
	var prev = first
	for i := range 3 { // fast enough that the clock may not move: still strictly later
		next := mustPutPolicy(t, b, "support", fmt.Sprintf("name: support\nversion: \"%d\"\n", i))
		if !next.CreatedAt.Equal(first.CreatedAt) {
			t.Errorf("replacing changed CreatedAt: %v, was %v", next.CreatedAt, first.CreatedAt)
		}
		if !next.UpdatedAt.After(prev.UpdatedAt) {
			t.Errorf("UpdatedAt %v is not after the previous %v", next.UpdatedAt, prev.UpdatedAt)
		}
		prev = next
	}
	read, err := b.GetPolicy(t.Context(), "support")
	if err != nil {
		t.Fatalf("GetPolicy: %v", err)
	}
	if diff := cmp.Diff(prev, read); diff != "" {
		t.Errorf("(-last put +read):\n%s", diff)
	}
	if n := len(mustListPolicies(t, b)); n != 1 {
		t.Errorf("%d policies stored after replacing one, want 1", n)
	}
}

func testPutPolicyInvalid(t *testing.T, open func(*testing.T) Backend) {
	b := openClosed(t, open)
	mustPutPolicy(t, b, "kept", "name: kept\n")
	before := snapshot(t, b)
	tests := []struct{ name, yaml, want string }{
		{"", "name: x\n", "name"},
		{"-dash", "name: x\n", "name"},
		{"has space", "name: x\n", "name"},
		{"a/b", "name: x\n", "name"},
		{strings.Repeat("n", 129), "name: x\n", "name"},
		{"empty", "", "empty"},
		{"huge", strings.Repeat("#", store.MaxPolicyYAMLBytes+1), "limit"},
		{"binary", "name: \xff\n", "UTF-8"},
	}
	for _, tc := range tests {
		_, err := b.PutPolicy(t.Context(), tc.name, tc.yaml)
		if !errors.Is(err, store.ErrInvalidPolicy) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("PutPolicy(%.20q): error = %v, want ErrInvalidPolicy mentioning %q", tc.name, err, tc.want)
		}
	}
	wantUnchanged(t, b, before)
}

func testPutPoliciesAtomic(t *testing.T, open func(*testing.T) Backend) {
	b := openClosed(t, open)
	old := mustPutPolicy(t, b, "a", "name: a\n")
	before := snapshot(t, b)
	for name, batch := range map[string][]store.StoredPolicy{
		"one invalid": {{Name: "a", YAML: "name: a\nversion: \"2\"\n"}, {Name: "b", YAML: "name: b\n"}, {Name: "bad name", YAML: "x"}},
		"repeated":    {{Name: "b", YAML: "name: b\n"}, {Name: "b", YAML: "name: b\n"}},
	} {
		if _, err := b.PutPolicies(t.Context(), batch); !errors.Is(err, store.ErrInvalidPolicy) {
			t.Errorf("%s: PutPolicies error = %v, want ErrInvalidPolicy", name, err)
		}
		wantUnchanged(t, b, before)
	}
	got, err := b.PutPolicies(t.Context(), []store.StoredPolicy{{Name: "c", YAML: "name: c\n"}, {Name: "a", YAML: "name: a\nversion: \"2\"\n"}})
	if err != nil {
		t.Fatalf("PutPolicies: %v", err)
	}
	if len(got) != 2 || got[0].Name != "c" || got[1].Name != "a" || !got[1].CreatedAt.Equal(old.CreatedAt) || got[1].YAML != "name: a\nversion: \"2\"\n" {
		t.Errorf("PutPolicies returned %+v", got)
	}
	if diff := cmp.Diff(got, []store.StoredPolicy{mustGetPolicy(t, b, "c"), mustGetPolicy(t, b, "a")}); diff != "" {
		t.Errorf("(-returned +read):\n%s", diff)
	}
	if got, err := b.PutPolicies(t.Context(), nil); err != nil || got == nil || len(got) != 0 {
		t.Errorf("PutPolicies(nil) = %#v, %v; want an empty list", got, err)
	}
}

func mustGetPolicy(t *testing.T, b Backend, name string) store.StoredPolicy {
	t.Helper()
	p, err := b.GetPolicy(t.Context(), name)
	if err != nil {
		t.Fatalf("GetPolicy(%q): %v", name, err)
	}
	return p
}

func testPutPoliciesLimit(t *testing.T, open func(*testing.T) Backend) {
	b := openClosed(t, open)
	mustPutPolicy(t, b, "existing", "name: existing\n")
	batch := make([]store.StoredPolicy, store.MaxStoredPolicies)
	for i := range batch {
		batch[i] = store.StoredPolicy{Name: fmt.Sprintf("p%05d", i), YAML: "rules: []\n"}
	}
	before := snapshot(t, b)
	_, err := b.PutPolicies(t.Context(), batch)
	if !errors.Is(err, store.ErrInvalidPolicy) || !strings.Contains(err.Error(), fmt.Sprint(store.MaxStoredPolicies)) {
		t.Fatalf("PutPolicies beyond the limit: error = %v, want ErrInvalidPolicy naming the limit", err)
	}
	wantUnchanged(t, b, before)
	// Replacing does not count twice: the limit is reached exactly.
	batch[0].Name = "existing"
	if _, err := b.PutPolicies(t.Context(), batch); err != nil {
		t.Fatalf("PutPolicies up to the limit: %v", err)
	}
	if n := len(mustListPolicies(t, b)); n != store.MaxStoredPolicies {
		t.Errorf("%d policies listed, want %d", n, store.MaxStoredPolicies)
	}
}

func testListPoliciesOrder(t *testing.T, open func(*testing.T) Backend) {
	b := openClosed(t, open)
	// Byte-wise: upper case before lower case, '-' before digits.
	for _, n := range []string{"beta", "Zeta", "alpha", "a-1", "a1", "A"} {
		mustPutPolicy(t, b, n, "name: "+n+"\n")
	}
	var got []string
	for _, p := range mustListPolicies(t, b) {
		got = append(got, p.Name)
	}
	want := []string{"A", "Zeta", "a-1", "a1", "alpha", "beta"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ListPolicies order (-want +got):\n%s", diff)
	}
}

func testGetPolicyNotFound(t *testing.T, open func(*testing.T) Backend) {
	b := openClosed(t, open)
	mustPutPolicy(t, b, "Support", "name: Support\n")
	for _, n := range []string{"support", "missing", "", "Support "} {
		_, err := b.GetPolicy(t.Context(), n)
		wantErr(t, err, identity.ErrNotFound, fmt.Sprintf("GetPolicy(%q)", n))
	}
}

func testDeletePolicy(t *testing.T, open func(*testing.T) Backend) {
	b := openClosed(t, open)
	mustPutPolicy(t, b, "a", "name: a\n")
	keep := mustPutPolicy(t, b, "b", "name: b\n")
	if err := b.DeletePolicy(t.Context(), "a"); err != nil {
		t.Fatalf("DeletePolicy: %v", err)
	}
	_, err := b.GetPolicy(t.Context(), "a")
	wantErr(t, err, identity.ErrNotFound, "GetPolicy after DeletePolicy")
	wantErr(t, b.DeletePolicy(t.Context(), "a"), identity.ErrNotFound, "DeletePolicy twice")
	wantErr(t, b.DeletePolicy(t.Context(), "never"), identity.ErrNotFound, "DeletePolicy(never)")
	if diff := cmp.Diff([]store.StoredPolicy{keep}, mustListPolicies(t, b)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	// The name is free again, with a fresh CreatedAt.
	again := mustPutPolicy(t, b, "a", "name: a\n")
	if !again.CreatedAt.Equal(again.UpdatedAt) {
		t.Errorf("re-created policy: %+v", again)
	}
}

// testPutPolicyConcurrent: writers racing on the same and on different names
// all succeed, and the last write of each name is what is stored.
func testPutPolicyConcurrent(t *testing.T, open func(*testing.T) Backend) {
	b := openClosed(t, open)
	const workers = 8
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range 5 {
				if _, err := b.PutPolicy(t.Context(), "shared", fmt.Sprintf("name: shared\nversion: \"%d-%d\"\n", w, i)); err != nil {
					t.Errorf("PutPolicy(shared): %v", err)
				}
				if _, err := b.PutPolicy(t.Context(), fmt.Sprintf("own-%d", w), "name: own\n"); err != nil {
					t.Errorf("PutPolicy(own): %v", err)
				}
			}
		})
	}
	wg.Wait()
	if n := len(mustListPolicies(t, b)); n != workers+1 {
		t.Errorf("%d policies stored, want %d", n, workers+1)
	}
}
