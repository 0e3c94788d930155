package filterdecider

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshguard/meshguard/engine"
)

// TestDecisionCacheByteBound: put keeps no entry over maxEntry bytes, and
// the entries together never keep more than maxBytes, whatever the mix of
// sizes, while the entry bound and eviction still work: after each put,
// the entry just put is held (when within maxEntry) and the byte count is
// the sum of what the entries held keep.
func TestDecisionCacheByteBound(t *testing.T) {
	// A decision keeping n bytes: only its message (KeptBytes counts it).
	of := func(n int) engine.Decision { return engine.Decision{Message: strings.Repeat("m", n)} }
	for _, tc := range []struct {
		name               string
		max, entry, budget int
		sizes              []int
		wantHeld           int  // entries held at the end; -1: any
		sameKey            bool // every put under one key
	}{
		{"an entry over the cap is not cached", 10, 100, 1000, []int{101, 5000}, 0, false},
		{"an entry at the cap is", 10, 100, 1000, []int{100}, 1, false},
		{"the budget holds with entries of one size", 100, 100, 1000, slices.Repeat([]int{100}, 25), 10, false},
		{"the budget holds with entries of mixed size", 100, 300, 1000,
			[]int{10, 300, 20, 299, 1, 150, 301, 300, 300, 300, 5, 250, 0, 300, 40, 300, 300, 7}, -1, false},
		{"small entries after large ones evict them", 100, 300, 1000, append(slices.Repeat([]int{300}, 5), slices.Repeat([]int{10}, 30)...), -1, false},
		{"the entry bound holds under the budget", 4, 100, 1000, slices.Repeat([]int{10}, 20), 4, false},
		{"the same key put again is counted once", 10, 100, 1000, []int{50, 50, 50}, 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := newDecisionCache(false, tc.max)
			if err != nil {
				t.Fatal(err)
			}
			c.maxEntry, c.maxBytes = tc.entry, tc.budget
			exp := time.Now().Add(time.Hour)
			for i, n := range tc.sizes {
				k := [2]uint64{uint64(i), 0}
				if tc.sameKey {
					k = [2]uint64{1, 1}
				}
				kept := c.put(k, of(n), exp)
				if kept != (n <= tc.entry) {
					t.Fatalf("put %d (%d bytes): kept %v, cap %d", i, n, kept, tc.entry)
				}
				if _, held := c.entries[k]; held != kept {
					t.Fatalf("put %d (%d bytes): held %v after put said %v", i, n, held, kept)
				}
				sum := 0
				for _, e := range c.entries {
					sum += e.size
				}
				if c.bytes != sum || c.bytes > tc.budget || len(c.entries) > tc.max {
					t.Fatalf("after put %d: %d entries, counted %d bytes, holding %d; bounds %d entries, %d bytes", i, len(c.entries), c.bytes, sum, tc.max, tc.budget)
				}
			}
			if tc.wantHeld >= 0 && c.len() != tc.wantHeld {
				t.Fatalf("%d entries held, want %d", c.len(), tc.wantHeld)
			}
		})
	}
}
