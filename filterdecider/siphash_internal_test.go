package filterdecider

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"testing"
)

// TestSipHash128 holds sipHash128 to the reference implementation's
// vectors (vectors_sip128: key 00…0f, message 00…(n-1)).
func TestSipHash128(t *testing.T) {
	key := make([]byte, 16)
	for i := range key {
		key[i] = byte(i)
	}
	k0, k1 := binary.LittleEndian.Uint64(key), binary.LittleEndian.Uint64(key[8:])
	for _, tc := range []struct {
		n    int
		want string
	}{
		{0, "a3817f04ba25a8e66df67214c7550293"},
		{1, "da87c1d86b99af44347659119b22fc45"},
	} {
		m := make([]byte, tc.n)
		for i := range m {
			m[i] = byte(i)
		}
		h := sipHash128(k0, k1, m)
		got := hex.EncodeToString(binary.LittleEndian.AppendUint64(binary.LittleEndian.AppendUint64(nil, h[0]), h[1]))
		if got != tc.want {
			t.Errorf("%d bytes: got %s, want %s", tc.n, got, tc.want)
		}
	}
}

// BenchmarkCacheKey: the decision cache's key, against SHA-256 of the
// same bytes (what the token cache pays for a token), for a 400-byte
// token with a request's fields and headers (≈ 600 bytes in all).
func BenchmarkCacheKey(b *testing.B) {
	m := make([]byte, 600)
	for i := range m {
		m[i] = byte(i)
	}
	b.Run("siphash128", func(b *testing.B) {
		for b.Loop() {
			_ = sipHash128(1, 2, m)
		}
	})
	b.Run("sha256", func(b *testing.B) {
		for b.Loop() {
			_ = sha256.Sum256(m)
		}
	})
}

// TestSipStream: written in pieces of any size, the stream hashes as the
// whole message does.
func TestSipStream(t *testing.T) {
	m := make([]byte, 100)
	for i := range m {
		m[i] = byte(i * 7)
	}
	want := sipHash128(3, 4, m)
	for step := 1; step <= 17; step++ {
		s := newSip(3, 4)
		for i := 0; i < len(m); i += step {
			s.writeString(string(m[i:min(i+step, len(m))]))
		}
		if got := s.sum(); got != want {
			t.Fatalf("in pieces of %d: %x, want %x", step, got, want)
		}
	}
}
