package policy

import "math/bits"

// bitset is a set of policy indexes. Coverage and "has a first match" are
// kept as bitsets so combining a hundred policies costs a few word operations.
type bitset []uint64

func newBitset(n int) bitset { return make(bitset, (n+63)/64) }

func (b bitset) set(i int)      { b[i>>6] |= 1 << (uint(i) & 63) }
func (b bitset) has(i int) bool { return b[i>>6]&(1<<(uint(i)&63)) != 0 }

func (b bitset) or(o bitset) {
	for i := range b {
		b[i] |= o[i]
	}
}

// first returns the lowest member of b ∩ o (o may be nil for b alone), or -1.
func (b bitset) first(o bitset) int {
	for i, w := range b {
		if o != nil {
			w &= o[i]
		}
		if w != 0 {
			return i*64 + bits.TrailingZeros64(w)
		}
	}
	return -1
}

// next returns the lowest member of b ∩ o that is ≥ from, or -1.
func (b bitset) next(from int, o bitset) int {
	for i := from >> 6; i < len(b); i++ {
		w := b[i]
		if o != nil {
			w &= o[i]
		}
		if i == from>>6 {
			w &= ^uint64(0) << (uint(from) & 63)
		}
		if w != 0 {
			return i*64 + bits.TrailingZeros64(w)
		}
	}
	return -1
}
