package filterdecider

import (
	"encoding/binary"
	"math/bits"
)

// sip is SipHash-2-4 with its 128-bit output (Aumasson and Bernstein), a
// pseudo-random function of a secret 128-bit key: the decision cache's
// key (cache.go). It is a dozen 64-bit operations per eight bytes, which
// wasm runs natively, where SHA-256 of a token costs ≈ 10 µs in the
// filter; written to as a stream, so a key costs no allocation.
type sip struct {
	v0, v1, v2, v3 uint64
	tail           [8]byte
	nt             int // bytes in tail
	n              int // bytes written
}

func newSip(k0, k1 uint64) sip {
	return sip{v0: k0 ^ 0x736f6d6570736575, v1: k1 ^ 0x646f72616e646f6d ^ 0xee,
		v2: k0 ^ 0x6c7967656e657261, v3: k1 ^ 0x7465646279746573}
}

func (s *sip) round() {
	s.v0 += s.v1
	s.v1 = bits.RotateLeft64(s.v1, 13) ^ s.v0
	s.v0 = bits.RotateLeft64(s.v0, 32)
	s.v2 += s.v3
	s.v3 = bits.RotateLeft64(s.v3, 16) ^ s.v2
	s.v0 += s.v3
	s.v3 = bits.RotateLeft64(s.v3, 21) ^ s.v0
	s.v2 += s.v1
	s.v1 = bits.RotateLeft64(s.v1, 17) ^ s.v2
	s.v2 = bits.RotateLeft64(s.v2, 32)
}

func (s *sip) block(w uint64) {
	s.v3 ^= w
	s.round()
	s.round()
	s.v0 ^= w
}

func (s *sip) writeString(m string) {
	s.n += len(m)
	for s.nt > 0 && len(m) > 0 {
		s.tail[s.nt] = m[0]
		s.nt, m = s.nt+1, m[1:]
		if s.nt == 8 {
			s.block(binary.LittleEndian.Uint64(s.tail[:]))
			s.nt = 0
		}
	}
	for ; len(m) >= 8; m = m[8:] {
		s.block(uint64(m[0]) | uint64(m[1])<<8 | uint64(m[2])<<16 | uint64(m[3])<<24 |
			uint64(m[4])<<32 | uint64(m[5])<<40 | uint64(m[6])<<48 | uint64(m[7])<<56)
	}
	s.nt += copy(s.tail[s.nt:], m)
}

// writeLen writes n as eight bytes: the length prefix of a field.
func (s *sip) writeLen(n int) {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(n))
	s.writeString(string(b[:]))
}

// field writes m, length-prefixed, so no two lists of fields share an
// encoding.
func (s *sip) field(m string) {
	s.writeLen(len(m))
	s.writeString(m)
}

func (s *sip) sum() [2]uint64 {
	last := uint64(s.n) << 56
	for i := range s.nt {
		last |= uint64(s.tail[i]) << (8 * i)
	}
	s.block(last)
	s.v2 ^= 0xee
	for range 4 {
		s.round()
	}
	h0 := s.v0 ^ s.v1 ^ s.v2 ^ s.v3
	s.v1 ^= 0xdd
	for range 4 {
		s.round()
	}
	return [2]uint64{h0, s.v0 ^ s.v1 ^ s.v2 ^ s.v3}
}

// sipHash128 is SipHash-2-4-128 of m under (k0, k1).
func sipHash128(k0, k1 uint64, m []byte) [2]uint64 {
	s := newSip(k0, k1)
	s.writeString(string(m))
	return s.sum()
}
