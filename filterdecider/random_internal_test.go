package filterdecider

import (
	"bytes"
	"testing"
)

// TestRandomBufferGivesEachByteOnce: the bytes handed out for ids are
// never handed out twice, across refills, and a request larger than the
// buffer is served whole; what was given is cleared from the buffer.
func TestRandomBufferGivesEachByteOnce(t *testing.T) {
	for _, tc := range []struct {
		name  string
		sizes []int
	}{
		{"ids of many decisions, across refills", []int{12, 16, 8, 12, 16, 8, 12, 16, 8}},
		{"a read that does not fit the rest", []int{randomBufferSize - 4, 8, 8}},
		{"a read larger than the buffer", []int{randomBufferSize + 1, 16}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRandomBuffer()
			seen := map[string]bool{}
			for round := 0; round < 300; round++ {
				for _, n := range tc.sizes {
					b := make([]byte, n)
					r.fill(b)
					if bytes.Equal(b, make([]byte, n)) {
						t.Fatalf("round %d: %d bytes all zero: not filled", round, n)
					}
					// 8 bytes from crypto/rand repeat with chance 2⁻⁶⁴:
					// a repeat is a byte given twice.
					k := string(b[len(b)-8:])
					if seen[k] {
						t.Fatalf("round %d: %x given twice", round, b)
					}
					seen[k] = true
					if r.off <= randomBufferSize && r.off >= n && bytes.Contains(r.buf[:r.off], b[len(b)-8:]) {
						t.Fatalf("round %d: %x still in the buffer after it was given", round, b)
					}
				}
			}
		})
	}
}
