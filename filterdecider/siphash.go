package filterdecider

import "math/bits"

// sip is SipHash-2-4 with its 128-bit output (Aumasson and Bernstein), a
// pseudo-random function of a secret 128-bit key: the decision cache's
// key (cache.go). It is a dozen 64-bit operations per eight bytes, which
// wasm runs natively, where SHA-256 of a token costs ≈ 10 µs in the
// filter; written to as a stream, so a key costs no allocation.
type sip struct {
	v0, v1, v2, v3 uint64
	tail           uint64 // the bytes of the word being filled, little-endian
	nt             int    // bytes in tail
	n              int    // bytes written
}

func newSip(k0, k1 uint64) sip {
	return sip{v0: k0 ^ 0x736f6d6570736575, v1: k1 ^ 0x646f72616e646f6d ^ 0xee,
		v2: k0 ^ 0x6c7967656e657261, v3: k1 ^ 0x7465646279746573}
}

// rounds runs n SipRounds on the state. The state stays in locals
// across the rounds: through the pointer, Go (and more so Go compiled to
// wasm) loads and stores each word at every step, which made a cache key
// cost 5 µs natively.
func (s *sip) rounds(n int) {
	v0, v1, v2, v3 := s.v0, s.v1, s.v2, s.v3
	for range n {
		v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
	}
	s.v0, s.v1, s.v2, s.v3 = v0, v1, v2, v3
}

// sipRound is one SipRound.
func sipRound(v0, v1, v2, v3 uint64) (uint64, uint64, uint64, uint64) {
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
	return v0, v1, v2, v3
}

// block compresses one word (two rounds: SipHash-2-4).
func (s *sip) block(w uint64) {
	s.v3 ^= w
	s.rounds(2)
	s.v0 ^= w
}

func (s *sip) writeString(m string) {
	s.n += len(m)
	for s.nt > 0 && len(m) > 0 {
		s.tail |= uint64(m[0]) << (8 * s.nt)
		s.nt, m = s.nt+1, m[1:]
		if s.nt == 8 {
			s.block(s.tail)
			s.tail, s.nt = 0, 0
		}
	}
	if len(m) >= 8 {
		v0, v1, v2, v3 := s.v0, s.v1, s.v2, s.v3
		for ; len(m) >= 8; m = m[8:] {
			w := uint64(m[0]) | uint64(m[1])<<8 | uint64(m[2])<<16 | uint64(m[3])<<24 |
				uint64(m[4])<<32 | uint64(m[5])<<40 | uint64(m[6])<<48 | uint64(m[7])<<56
			v3 ^= w
			v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
			v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
			v0 ^= w
		}
		s.v0, s.v1, s.v2, s.v3 = v0, v1, v2, v3
	}
	for i := range len(m) {
		s.tail |= uint64(m[i]) << (8 * (s.nt + i))
	}
	s.nt += len(m)
}

// writeLen writes n as eight bytes, little-endian: the length prefix of
// a field. Whatever the tail holds, one word is compressed, without going
// through the bytes one at a time.
func (s *sip) writeLen(n int) {
	w := uint64(n)
	s.n += 8
	if s.nt == 0 {
		s.block(w)
		return
	}
	shift := uint(8 * s.nt)
	s.block(s.tail | w<<shift)
	s.tail = w >> (64 - shift)
}

// field writes m, length-prefixed, so no two lists of fields share an
// encoding.
func (s *sip) field(m string) {
	s.writeLen(len(m))
	s.writeString(m)
}

func (s *sip) sum() [2]uint64 {
	s.block(uint64(s.n)<<56 | s.tail)
	s.v2 ^= 0xee
	s.rounds(4)
	h0 := s.v0 ^ s.v1 ^ s.v2 ^ s.v3
	s.v1 ^= 0xdd
	s.rounds(4)
	return [2]uint64{h0, s.v0 ^ s.v1 ^ s.v2 ^ s.v3}
}

// sipHash128 is SipHash-2-4-128 of m under (k0, k1).
func sipHash128(k0, k1 uint64, m []byte) [2]uint64 {
	s := newSip(k0, k1)
	s.writeString(string(m))
	return s.sum()
}
