package filterprotocol

import (
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/trust"
)

// TestDeferredCheckCarriesTheRequest: what the filter sends MeshGuard is the
// request as the upstream will receive it — its headers for the policies'
// header.* keys, without the credentials (sent apart) or MeshGuard's own
// headers — and MeshGuard refuses a check beyond the bounds every
// enforcement point keeps.
func TestDeferredCheckCarriesTheRequest(t *testing.T) {
	r := engine.Request{Method: "POST", Host: "mail.mesh", Path: "/outbox?to=a@example.com", Token: "t.o.k", Delegation: "d.e.l", MinTier: trust.Verified}
	dc := NewDeferredCheck(&r, [][2]string{
		{":path", "/outbox"}, {"authorization", "Bearer t.o.k"}, {"Cookie", "s=1"}, {"x-meshguard-action", "read:x"},
		{"X-MeshGuard-Context", "{}"}, {"x-env", "staging"}, {"Accept", "a,b"},
	})
	if want := [][2]string{{"x-env", "staging"}, {"Accept", "a,b"}}; !reflect.DeepEqual(dc.Headers, want) {
		t.Fatalf("headers sent: %q, want %q", dc.Headers, want)
	}
	got, msg := dc.Request()
	if msg != "" || got.Token != "t.o.k" || got.Delegation != "d.e.l" || got.Path != r.Path || got.MinTier != trust.Verified || got.Source != engine.SourceWasm {
		t.Fatalf("request: %+v %q", got, msg)
	}
	if v, n := got.Headers.Lookup("x-env"); v != "staging" || n != 1 {
		t.Fatalf("x-env: %q %d", v, n)
	}

	for name, dc := range map[string]DeferredCheck{
		"too many headers":   {Headers: repeat([2]string{"x", "y"}, 201)},
		"a header too large": {Headers: [][2]string{{"x", strings.Repeat("a", 33<<10)}}},
		"a tier that is not": {MinTier: "root"},
	} {
		if _, msg := dc.Request(); msg == "" {
			t.Errorf("%s: accepted", name)
		}
	}
}

func repeat(kv [2]string, n int) [][2]string {
	out := make([][2]string, n)
	for i := range out {
		out[i] = [2]string{kv[0] + strconv.Itoa(i), kv[1]}
	}
	return out
}
