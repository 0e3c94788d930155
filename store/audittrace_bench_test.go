package store_test

import (
	"crypto/rand"
	"encoding/hex"
	"testing"

	"github.com/meshguard/meshguard/audit"
)

// BenchmarkAppendAuditTraces is BenchmarkAppendAudit's SQLite case with a
// fresh random trace id a record, as the engine makes one for a request
// that carries none (BenchmarkAppendAudit's records share one, as under
// make bench-load): the trace index then takes each record at a random
// place, a page of its own, on a trail of 100k records already.
func BenchmarkAppendAuditTraces(b *testing.B) {
	benchTrail(b, func(_ int, r *audit.Record) {
		var trace [16]byte
		_, _ = rand.Read(trace[:])
		r.TraceID = hex.EncodeToString(trace[:])
	})
}
