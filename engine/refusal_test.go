package engine

import (
	"errors"
	"testing"

	"github.com/meshguard/meshguard/internal/edge"
)

// TestCheckPathRefusalKinds: each path checkPath refuses matches the kind
// it is refused for, and the paths that mean what they say pass.
func TestCheckPathRefusalKinds(t *testing.T) {
	tests := []struct {
		name string
		path string
		want error // nil: accepted
	}{
		{"the root", "/", nil},
		{"a plain path", "/docs/a", nil},
		{"dots inside a name", "/docs/a..b/.x", nil},
		{"no leading slash", "docs", errPathNotNormalized},
		{"an empty segment", "/docs//a", errPathNotNormalized},
		{"a dot segment", "/docs/./a", errPathNotNormalized},
		{"a dot-dot segment", "/docs/../admin", errPathNotNormalized},
		{"a trailing dot-dot", "/docs/..", errPathNotNormalized},
		{"an encoded slash", "/docs%2Fa", errPathNotNormalized},
		{"a backslash", "/docs\\a", errPathNotNormalized},
		{"a path parameter", "/docs;/a", errPathAmbiguous},
		{"an encoded path parameter", "/docs%3B/a", errPathAmbiguous},
		{"an encoded '#'", "/admin%23.css", errPathAmbiguous},
		{"an encoded NUL", "/a%00.png", errPathAmbiguous},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := checkPath(tc.path)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("checkPath(%q) = %v, want it accepted", tc.path, err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("checkPath(%q) = %v, want %v", tc.path, err, tc.want)
			}
		})
	}
}

// TestRefuseIsTheOneMapping: refuse turns a refusal into the decision's
// status, reason and message, and anything else into MeshGuard's own
// failure, which leaves the decision undecided.
func TestRefuseIsTheOneMapping(t *testing.T) {
	tests := []struct {
		name   string
		err    error
		status int
		reason string
	}{
		{"an unresolved action is a 403", refused(errActionUnresolved, "no route"), 403, ReasonActionUnresolved},
		{"a path is a 400", refused(errPathNotNormalized, "a path"), 400, ReasonBadRequest},
		{"a field's bound is a 400", refused(edge.ErrTextTooLong, "a field"), 400, ReasonBadRequest},
		{"an ambiguous value is a 400", refused(errValueAmbiguous, "a value"), 400, ReasonBadRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var d Decision
			if err := d.refuse(tc.err); err != nil {
				t.Fatalf("refuse: %v", err)
			}
			if d.Status != tc.status || d.Reason != tc.reason || d.Message != tc.err.Error() || d.Effect != "deny" {
				t.Fatalf("got %d %s %q %s, want %d %s %q deny", d.Status, d.Reason, d.Message, d.Effect, tc.status, tc.reason, tc.err.Error())
			}
		})
	}
	t.Run("an error that is no refusal is MeshGuard's own", func(t *testing.T) {
		var d Decision
		err := d.refuse(errors.New("store down"))
		if !errors.Is(err, ErrInternal) || d.Status != 0 || d.Effect != "" {
			t.Fatalf("got %v, decision %d %q", err, d.Status, d.Effect)
		}
	})
}
