package filterdecider

import (
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
