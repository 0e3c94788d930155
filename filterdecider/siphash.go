package filterdecider

import (
	"encoding/binary"
	"math/bits"
)

// sipHash128 is SipHash-2-4 with its 128-bit output (Aumasson and
// Bernstein), a pseudo-random function of a secret 128-bit key: the
// decision cache's key (cache.go). It is a dozen 64-bit operations per
// eight bytes, which wasm runs natively, where SHA-256 of a token costs
// ≈ 10 µs in the filter.
func sipHash128(k0, k1 uint64, m []byte) [2]uint64 {
	v0 := k0 ^ 0x736f6d6570736575
	v1 := k1 ^ 0x646f72616e646f6d ^ 0xee
	v2 := k0 ^ 0x6c7967656e657261
	v3 := k1 ^ 0x7465646279746573
	round := func() {
		v0 += v1
		v1 = bits.RotateLeft64(v1, 13) ^ v0
		v0 = bits.RotateLeft64(v0, 32)
		v2 += v3
		v3 = bits.RotateLeft64(v3, 16) ^ v2
		v0 += v3
		v3 = bits.RotateLeft64(v3, 21) ^ v0
		v2 += v1
		v1 = bits.RotateLeft64(v1, 17) ^ v2
		v2 = bits.RotateLeft64(v2, 32)
	}
	n := len(m)
	for ; len(m) >= 8; m = m[8:] {
		w := binary.LittleEndian.Uint64(m)
		v3 ^= w
		round()
		round()
		v0 ^= w
	}
	last := uint64(n) << 56
	for i, c := range m {
		last |= uint64(c) << (8 * i)
	}
	v3 ^= last
	round()
	round()
	v0 ^= last
	v2 ^= 0xee
	for range 4 {
		round()
	}
	h0 := v0 ^ v1 ^ v2 ^ v3
	v1 ^= 0xdd
	for range 4 {
		round()
	}
	return [2]uint64{h0, v0 ^ v1 ^ v2 ^ v3}
}
