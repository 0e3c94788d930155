package store_test

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/store"
	"github.com/meshguard/meshguard/store/pgtest"
)

// BenchmarkAppendAudit appends sealed batches of 256 records, as the audit
// writer does under load; records/s is the figure that matters.
func BenchmarkAppendAudit(b *testing.B) {
	for _, backend := range []struct {
		name string
		open func(b *testing.B) audit.Store
	}{
		{"sqlite", func(b *testing.B) audit.Store {
			s, err := store.OpenSQLite(b.Context(), filepath.Join(b.TempDir(), "bench.db"))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = s.Close() })
			return s
		}},
		{"postgres", func(b *testing.B) audit.Store {
			s, err := store.OpenPostgres(b.Context(), pgtest.NewDatabase(b))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = s.Close() })
			return s
		}},
	} {
		b.Run(backend.name, func(b *testing.B) {
			at := time.Now() // every record at one time, as this benchmark always had
			benchAppend(b, backend.open(b), 0, func(n int, r *audit.Record) {
				r.ID, r.Timestamp = fmt.Sprintf("aud_%09d", n), at
			})
		})
	}
}
