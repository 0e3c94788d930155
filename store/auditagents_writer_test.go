package store

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/store/pgtest"
)

// TestWriterSetsApartAnAgentIDPostgreSQLCannotKeep: an audit.Writer on
// PostgreSQL given a record whose agent id holds a NUL (which a text
// column cannot keep) dead-letters it and stores the records around it,
// batched and with AUDIT_FLUSH_MS=0. The dictionary's refusal was not the
// record's fault to the writer, so the batched one retried its batch
// until Close gave up: none of the three records was stored.
func TestWriterSetsApartAnAgentIDPostgreSQLCannotKeep(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  audit.WriterConfig
	}{
		{"batched", audit.WriterConfig{FlushInterval: 2 * time.Millisecond, RetryBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}},
		{"sync", audit.WriterConfig{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := pgtest.NewDatabase(t)
			w, err := audit.NewWriter(t.Context(), openPostgresDB(t, u), tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			for j, a := range []string{"agent_a", "agent\x00b", "agent_c"} {
				r := audit.Record{ID: fmt.Sprintf("aud_%d", j), AgentID: a, Action: "read:x", Decision: "allow"}
				if err := w.Write(t.Context(), r); err != nil {
					t.Errorf("write %d: %v", j, err)
				}
			}
			// Close retries until its context ends: bounded, so that the
			// failure is a failure and not a hang.
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			if err := w.Close(ctx); err != nil {
				t.Fatalf("close: %v", err)
			}
			reader := openPostgresDB(t, u)
			if n, err := audit.VerifyChains(t.Context(), reader); n != 2 {
				t.Errorf("verify: %d records in the chain (%v), want 2", n, err)
			}
			p, err := reader.AuditDeadLetters(t.Context(), 10, 0, true)
			if err != nil || len(p.DeadLetters) != 1 || p.DeadLetters[0].ID != "aud_1" {
				t.Fatalf("dead letters: %+v, %v; want aud_1 alone", p.DeadLetters, err)
			}
		})
	}
}
