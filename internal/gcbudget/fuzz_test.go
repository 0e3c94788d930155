package gcbudget

import (
	"math/big"
	"testing"
)

// FuzzPercent: for every budget, live heap and roots, Percent keeps
// within [MinPercent, MaxPercent] (never more collections than GOGC=100)
// and the heap's goal it gives, live + (live+roots)×p/100 as the runtime
// computes it, is not above the larger of the budget and GOGC=100's goal.
// The bounds are checked in exact arithmetic so that no overflow hides.
func FuzzPercent(f *testing.F) {
	for _, s := range [][3]uint64{
		{64 * mib, 4 * mib, mib}, {64 * mib, 0, 0}, {64 * mib, 20 * mib, 2 * mib},
		{1 << 40, 1 << 20, 0}, {^uint64(0), 0, 1}, {^uint64(0), 1 << 63, 1 << 63},
		{^uint64(0), 1 << 62, 1 << 62}, {1 << 63, 0, 1 << 61}, {8 * mib, mib, 0}, {8 * mib, 0, 0},
	} {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, budget, live, roots uint64) {
		p := Percent(budget, live, roots)
		if p < MinPercent || p > MaxPercent {
			t.Fatalf("Percent(%d, %d, %d) = %d, outside [%d, %d]", budget, live, roots, p, MinPercent, MaxPercent)
		}
		if goal, bound := goals(budget, live, roots, p); goal.Cmp(bound) > 0 {
			t.Fatalf("Percent(%d, %d, %d) = %d: goal %v past both the budget and GOGC=100's goal (%v)", budget, live, roots, p, goal, bound)
		}
	})
}

// goals is the heap's goal at p percent and the most it may be: the larger
// of the budget and GOGC=100's goal, each no less than the runtime's
// minimum heap at that percentage.
func goals(budget, live, roots uint64, p int) (goal, bound *big.Int) {
	l, r := new(big.Int).SetUint64(live), new(big.Int).SetUint64(roots)
	at := func(p int64) *big.Int {
		g := new(big.Int).Add(l, r)
		g.Mul(g, big.NewInt(p)).Quo(g, big.NewInt(100)).Add(g, l)
		if m := big.NewInt(heapMinimum * p / 100); g.Cmp(m) < 0 {
			g = m
		}
		return g
	}
	goal, bound = at(int64(p)), at(MinPercent)
	if b := new(big.Int).SetUint64(budget); b.Cmp(bound) > 0 {
		bound = b
	}
	return goal, bound
}
