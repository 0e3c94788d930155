package edge

import (
	"net/http"
	"strings"
	"testing"
)

func TestLookup(t *testing.T) {
	for i, name := range headerNames {
		for _, spelling := range []string{name, strings.ToUpper(name), http.CanonicalHeaderKey(name)} {
			if got := lookup(spelling); got != i {
				t.Errorf("lookup(%q) = %d, want %d", spelling, got, i)
			}
		}
	}
	for _, name := range []string{"", "x", "authorizatio", "authorizationn", "x-meshguard-agent-id", "traceparenx", "hostx", "h0st"} {
		if got := lookup(name); got != -1 {
			t.Errorf("lookup(%q) = %d, want -1", name, got)
		}
	}
}

// TestHeaderScan: bounds, repeats, the traceparent rule, and
// X-Forwarded-For lines joined into one list.
func TestHeaderScan(t *testing.T) {
	var s HeaderScan
	for _, h := range [][2]string{{"Authorization", "Bearer t"}, {"traceparent", "a"}, {"TraceParent", "b"}, {"x-forwarded-for", "1.1.1.1"}, {"x-forwarded-for", "2.2.2.2"}} {
		if !s.Add(h[0], h[1]) {
			t.Fatalf("Add(%q) refused: %s", h[0], s.Bad())
		}
	}
	if s.Get(HAuthorization) != "Bearer t" || s.Traceparent() != "" || s.Get(HForwardedFor) != "1.1.1.1,2.2.2.2" {
		t.Errorf("scan: authorization %q, traceparent %q, forwarded %q", s.Get(HAuthorization), s.Traceparent(), s.Get(HForwardedFor))
	}
	// The steering headers are no longer read: a repeat is any header's.
	if !s.Add("X-MeshGuard-Action", "read:a") || !s.Add("x-meshguard-action", "read:b") {
		t.Errorf("a repeated steering header: %q", s.Bad())
	}
	if s.Add("authorization", "Bearer u") || !strings.Contains(s.Bad(), "authorization appears more than once") {
		t.Errorf("a repeated credential: %q", s.Bad())
	}
	for _, v := range []string{"Bearer a,Bearer b", "Bearer a, b"} {
		var joined HeaderScan
		if joined.Add("Authorization", v) || !strings.Contains(joined.Bad(), "more than one value") {
			t.Errorf("credentials joined by Envoy %q: %q", v, joined.Bad())
		}
	}
	var big HeaderScan
	if big.Add("authorization", strings.Repeat("a", MaxTokenLen+1)) || !strings.Contains(big.Bad(), "authorization") {
		t.Errorf("an oversized token: %q", big.Bad())
	}
	var many HeaderScan
	for i := 0; i <= MaxHeaders; i++ {
		many.Add("x-h", "v")
	}
	if !strings.Contains(many.Bad(), "request headers") {
		t.Errorf("too many headers: %q", many.Bad())
	}
}

func TestMergeRepeated(t *testing.T) {
	got := MergeRepeated([][2]string{{"a", "1"}, {"B", "2"}, {"A", "3"}, {"c", ""}, {"b", "4"}})
	want := [][2]string{{"a", "1,3"}, {"B", "2,4"}, {"c", ""}}
	if len(got) != len(want) {
		t.Fatalf("got %q", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
}

// TestLookups: every view of a request's headers finds a header in any
// case and counts its repeats, so a repeated header is never read as one.
func TestLookups(t *testing.T) {
	views := map[string]interface {
		Lookup(string) (string, int)
	}{
		"map":   MapHeaders{"x-env": "a", "X-ENV": "b", "other": "c"},
		"pairs": PairHeaders{{"x-env", "a"}, {"other", "c"}, {"X-Env", "b"}},
		"multi": MultiHeaders{"X-Env": {"a", "b"}, "Other": {"c"}},
	}
	for name, v := range views {
		if _, n := v.Lookup("x-env"); n != 2 {
			t.Errorf("%s: x-env counted %d times, want 2", name, n)
		}
		if got, n := v.Lookup("other"); got != "c" || n != 1 {
			t.Errorf("%s: other = %q (%d)", name, got, n)
		}
		if got, n := v.Lookup("absent"); got != "" || n != 0 {
			t.Errorf("%s: absent = %q (%d)", name, got, n)
		}
	}
}

// TestSameName: '_' is read as '-' and case is ignored, so a policy
// reading x-env also reads X_Env, as CGI-style servers do.
func TestSameName(t *testing.T) {
	for _, tc := range []struct {
		k, name string
		want    bool
	}{
		{"x-env", "x-env", true},
		{"X-Env", "x-env", true},
		{"x_env", "x-env", true},
		{"X_ENV", "x-env", true},
		{"x-env", "x_env", true},
		{"x-envy", "x-env", false},
		{"x.env", "x-env", false},
		{"xenv", "x-env", false},
		{"", "", true},
	} {
		if got := SameName(tc.k, tc.name); got != tc.want {
			t.Errorf("SameName(%q, %q) = %v, want %v", tc.k, tc.name, got, tc.want)
		}
	}
	views := map[string]interface {
		Lookup(string) (string, int)
	}{
		"map":   MapHeaders{"x-env": "a", "x_env": "b"},
		"pairs": PairHeaders{{"x-env", "a"}, {"X_Env", "b"}},
		"multi": MultiHeaders{"X-Env": {"a"}, "X_env": {"b"}},
	}
	for name, v := range views {
		if _, n := v.Lookup("x-env"); n != 2 {
			t.Errorf("%s: x-env and x_env counted %d times, want 2", name, n)
		}
	}
}
