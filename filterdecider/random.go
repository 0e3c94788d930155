package filterdecider

import (
	"crypto/rand"
	"sync"
)

// randomBufferSize is how many bytes of crypto/rand one read takes: ≈ 85
// decisions' ids (16 bytes for each of three ids).
const randomBufferSize = 4096

// randomBuffer hands the engine its id bytes (engine.Config.Random) from
// crypto/rand read in bulk: in wasm each read is a WASI random_get, a host
// call, and a decision made three. The bytes are crypto/rand's, each given
// out once and cleared as it goes: ids are public, but nothing given out
// stays behind to be given again.
type randomBuffer struct {
	mu  sync.Mutex
	buf [randomBufferSize]byte
	off int
}

func newRandomBuffer() *randomBuffer { return &randomBuffer{off: randomBufferSize} }

// next returns the next 16 random bytes (engine.Config.Random).
func (r *randomBuffer) next() (b [16]byte) {
	r.fill(b[:])
	return b
}

// fill fills b with random bytes.
func (r *randomBuffer) fill(b []byte) {
	if len(b) > randomBufferSize {
		// crypto/rand.Read never fails on supported platforms (Go 1.24+).
		_, _ = rand.Read(b)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.off+len(b) > randomBufferSize {
		_, _ = rand.Read(r.buf[:])
		r.off = 0
	}
	given := r.buf[r.off : r.off+len(b)]
	copy(b, given)
	clear(given)
	r.off += len(b)
}
