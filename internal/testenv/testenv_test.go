package testenv

import (
	"strings"
	"testing"
)

func TestRequired(t *testing.T) {
	const name = "MESHGUARD_REQUIRE_X"
	for _, tc := range []struct {
		v       string
		want    bool
		wantErr bool
	}{
		{"", false, false},
		{"0", false, false},
		{"false", false, false},
		{"1", true, false},
		{"true", true, false},
		{"yes", false, true},
		{"2", false, true},
	} {
		got, err := Required(name, tc.v)
		if got != tc.want || (err != nil) != tc.wantErr {
			t.Errorf("Required(%q) = %v, %v; want %v, error %v", tc.v, got, err, tc.want, tc.wantErr)
		}
		if err != nil && !strings.Contains(err.Error(), name) {
			t.Errorf("Required(%q): %v does not name %s", tc.v, err, name)
		}
	}
}
