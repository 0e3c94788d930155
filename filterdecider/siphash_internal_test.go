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
		// Beyond the first two, from a plain transcription of the paper
		// (whose outputs for 0, 1 and 15 bytes are the reference's):
		// whole words, a word and a tail, several words, a cache key's
		// length.
		{7, "a1f1ebbed8dbc153c0b84aa61ff08239"},
		{8, "3b62a9ba6258f5610f83e264f31497b4"},
		{9, "264499060ad9baabc47f8b02bb6d71ed"},
		{15, "5493e99933b0a8117e08ec0f97cfc3d9"},
		{16, "6ee2a4ca67b054bbfd3315bf85230577"},
		{17, "473d06e8738db89854c066c47ae47740"},
		{63, "5150d1772f50834a503e069a973fbd7c"},
		{64, "1eaf077dc0d4cd3f8cad4d383658a74b"},
		{600, "323d3c776c91bede6e3ff383924b39a0"},
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

// TestSipLen: a length prefix hashes as its eight little-endian bytes
// written as a string, whatever the number of bytes before it.
func TestSipLen(t *testing.T) {
	for before := range 17 {
		for _, n := range []int{0, 1, 0x1234, 600, 1<<63 - 1} {
			a, b := newSip(5, 6), newSip(5, 6)
			a.writeString(string(make([]byte, before)))
			b.writeString(string(make([]byte, before)))
			a.writeLen(n)
			b.writeString(string(binary.LittleEndian.AppendUint64(nil, uint64(n))))
			a.writeString("after")
			b.writeString("after")
			if ga, gb := a.sum(), b.sum(); ga != gb {
				t.Fatalf("%d bytes before, length %d: %x, want %x", before, n, ga, gb)
			}
		}
	}
}
