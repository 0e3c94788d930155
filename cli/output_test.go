package cli

import "testing"

func TestCount(t *testing.T) {
	tests := []struct {
		name string
		n    int
		noun string
		want string
	}{
		{"zero is plural", 0, "error", "0 errors"},
		{"one is singular", 1, "error", "1 error"},
		{"two is plural", 2, "record", "2 records"},
		{"a y noun, one", 1, "policy", "1 policy"},
		{"a y noun, many", 5, "policy", "5 policies"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := count(tt.n, tt.noun); got != tt.want {
				t.Errorf("count(%d, %q) = %q, want %q", tt.n, tt.noun, got, tt.want)
			}
		})
	}
	if got := count(int64(1), "record"); got != "1 record" {
		t.Errorf("count(int64(1)) = %q", got)
	}
}
