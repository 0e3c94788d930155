package benchproc

import (
	"os"
	"testing"
	"time"
)

// TestStatCPU: utime and stime are read after the command name's last
// parenthesis, whatever the name holds; a line cut short is an error.
func TestStatCPU(t *testing.T) {
	for _, tc := range []struct {
		name, line string
		want       time.Duration
		ok         bool
	}{
		{"plain", "42 (meshguard) S 1 42 42 0 -1 4194560 100 0 0 0 150 25 0 0 20 0 8 0", 1750 * time.Millisecond, true},
		{"name with spaces and parentheses", "42 (a) b (c) S 1 42 42 0 -1 4194560 100 0 0 0 3 4 0 0 20 0 8 0", 70 * time.Millisecond, true},
		{"cut short", "42 (meshguard) S 1 42 42", 0, false},
		{"no name", "42 S 1 42 42 0 -1 4194560 100 0 0 0 150 25", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := statCPU([]byte(tc.line))
			if (err == nil) != tc.ok || got != tc.want {
				t.Fatalf("statCPU = %v, %v; want %v (ok %v)", got, err, tc.want, tc.ok)
			}
		})
	}
	if _, err := CPUTime(os.Getpid()); err != nil {
		t.Fatal(err)
	}
}
