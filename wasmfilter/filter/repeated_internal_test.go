package filter

import (
	"slices"
	"testing"

	"github.com/meshguard/meshguard/internal/edge"
)

// TestRepeatedSkipsOnlyWhatMergingLeavesAlone: the filter skips
// edge.MergeRepeated when repeated says no name comes twice, so repeated
// must say so exactly when merging would change nothing.
func TestRepeatedSkipsOnlyWhatMergingLeavesAlone(t *testing.T) {
	many := make([][2]string, edge.MaxHeaders+1)
	for i := range many {
		many[i] = [2]string{"x-h", "v"}
	}
	for _, tc := range []struct {
		name string
		hs   [][2]string
		want bool
	}{
		{"none", nil, false},
		{"distinct names", [][2]string{{":method", "GET"}, {":path", "/"}, {"authorization", "Bearer t"}, {"x-team", "a"}}, false},
		{"a name twice", [][2]string{{"x-team", "a"}, {":path", "/"}, {"x-team", "b"}}, true},
		{"a name twice, spelled in other cases", [][2]string{{"X-Team", "a"}, {"x-team", "b"}}, true},
		{"more than MaxHeaders, which merging leaves as they are", many, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := repeated(tc.hs); got != tc.want {
				t.Fatalf("repeated = %v, want %v", got, tc.want)
			}
			if unchanged := slices.Equal(edge.MergeRepeated(tc.hs), tc.hs); unchanged == tc.want {
				t.Fatalf("MergeRepeated leaves the headers unchanged: %v, but repeated says %v", unchanged, tc.want)
			}
		})
	}
}
