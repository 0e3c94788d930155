package engine

import (
	"crypto/rand"
	"encoding/hex"
	"strings"
	"time"
)

// newID returns prefix + hex of n (at most 16) random bytes from
// crypto/rand, in one allocation. With a time, the first six bytes are its
// Unix milliseconds instead: ids then sort by time, so the audit table's id
// index grows at its end instead of dirtying a random page per record
// (that alone cost the writer 10 µs a record).
func newID(prefix string, n int, at time.Time) string {
	var raw [16]byte
	// crypto/rand.Read never fails on supported platforms (Go 1.24+).
	_, _ = rand.Read(raw[:min(n, len(raw))])
	return makeID(raw, prefix, n, at)
}

// newID is newID with the engine's source of random bytes (Config.Random).
func (e *Engine) newID(prefix string, n int, at time.Time) string {
	if e.cfg.Random == nil {
		return newID(prefix, n, at)
	}
	return makeID(e.cfg.Random(), prefix, n, at)
}

// random is 16 bytes from the engine's source (Config.Random), or
// crypto/rand.
func (e *Engine) random() (raw [16]byte) {
	if e.cfg.Random == nil {
		// crypto/rand.Read never fails on supported platforms (Go 1.24+).
		_, _ = rand.Read(raw[:])
		return raw
	}
	return e.cfg.Random()
}

// appendID appends to b the hex of makeID's id, without its prefix.
func appendID(b []byte, raw [16]byte, n int, at time.Time) []byte {
	r := raw[:min(n, len(raw))]
	if !at.IsZero() && len(r) >= 12 {
		ms := uint64(at.UnixMilli())
		for i := range 6 {
			r[i] = byte(ms >> (8 * (5 - i)))
		}
	}
	return hex.AppendEncode(b, r)
}

// makeID is an id of the first n bytes of raw (a value, not a slice: a
// slice handed to a function value would escape, an allocation per id).
func makeID(raw [16]byte, prefix string, n int, at time.Time) string {
	b := raw[:min(n, len(raw))]
	if !at.IsZero() && len(b) >= 12 {
		ms := uint64(at.UnixMilli())
		for i := range 6 {
			b[i] = byte(ms >> (8 * (5 - i)))
		}
	}
	var sb strings.Builder
	sb.Grow(len(prefix) + hex.EncodedLen(len(b)))
	sb.WriteString(prefix)
	var enc [2 * len(raw)]byte
	hex.Encode(enc[:], b)
	sb.Write(enc[:hex.EncodedLen(len(b))])
	return sb.String()
}
