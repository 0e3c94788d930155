package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/meshguard/meshguard/admin"
	"github.com/meshguard/meshguard/alert"
	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/config"
	"github.com/meshguard/meshguard/store"
	"github.com/meshguard/meshguard/telemetry"
)

// buildCheckpoints loads (or creates) this replica's checkpoint key and
// returns the checkpointer that signs the trail's heads: logged, exported
// as a metric and a span event, served at /admin/audit/checkpoint.
func (p *parts) buildCheckpoints(cfg *config.Config, tracer trace.Tracer, log *slog.Logger) (*audit.Checkpointer, error) {
	signer, err := audit.LoadCheckpointKey(filepath.Join(cfg.DataDir, audit.CheckpointKeyFile))
	if err != nil {
		return nil, err
	}
	log.Info("audit checkpoints are signed with this key; keep it to verify them", "key", signer.VerifierKey())
	c := &audit.Checkpointer{
		Heads: p.db, Signer: signer, Every: time.Duration(cfg.AuditCheckpointSeconds) * time.Second,
		Path: filepath.Join(cfg.DataDir, audit.CheckpointFile), Logger: log,
		OnSigned: func(ctx context.Context, cp audit.Checkpoint) {
			_, span := tracer.Start(ctx, "meshguard.audit.checkpoint", trace.WithNewRoot())
			attrs := []attribute.KeyValue{
				attribute.String("meshguard.audit.checkpoint.time", cp.Time.Format(time.RFC3339Nano)),
				attribute.String("meshguard.audit.checkpoint.key", cp.Key),
				attribute.String("meshguard.audit.checkpoint.note", cp.Note),
			}
			for i, ch := range cp.Chains {
				n := "meshguard.audit.checkpoint.chain." + strconv.Itoa(i)
				attrs = append(attrs, attribute.String(n+".id", ch.Chain), attribute.Int64(n+".seq", ch.Seq), attribute.String(n+".hash", ch.Hash))
			}
			span.AddEvent("audit.checkpoint", trace.WithAttributes(attrs...))
			span.End()
		},
	}
	p.metrics.Gauge("meshguard_audit_checkpoint_timestamp_seconds", "When the audit trail's heads were last signed (Unix time).",
		func() float64 {
			if cp := c.Last(); cp != nil {
				return float64(cp.Time.UnixNano()) / 1e9
			}
			return 0
		})
	p.metrics.Gauge("meshguard_audit_checkpoint_records", "The sum of the chain positions the last audit checkpoint signed.",
		func() float64 {
			var n int64
			if cp := c.Last(); cp != nil {
				for _, ch := range cp.Chains {
					n += ch.Seq
				}
			}
			return float64(n)
		})
	return c, nil
}

// auditJournal stores what a process that stopped while its store lagged
// left in DATA_DIR's audit journal, before any decision is made, and
// returns this process's journal.
func (p *parts) auditJournal(ctx context.Context, cfg *config.Config, log *slog.Logger) (*audit.Journal, error) {
	path := filepath.Join(cfg.DataDir, audit.JournalFile)
	_, err := audit.ReplayJournal(ctx, path, func(ctx context.Context, chain string) (audit.Store, func(), error) {
		switch {
		case p.pg == nil && chain == "":
			return p.db, func() {}, nil
		case p.pg == nil:
			return nil, nil, fmt.Errorf("the journal is of PostgreSQL chain %q, and the store is SQLite", chain)
		case chain == p.pg.AuditChain():
			return p.pg, func() {}, nil
		}
		// The stopped process's chain (each process has its own).
		s, err := store.OpenPostgres(ctx, cfg.DatabaseURL, store.WithAuditChain(chain), store.WithMaxReaders(1))
		if err != nil {
			return nil, nil, err
		}
		return s, func() { _ = s.Close() }, nil
	}, log)
	if err != nil {
		return nil, err
	}
	chain := ""
	if p.pg != nil {
		chain = p.pg.AuditChain()
	}
	return audit.NewJournal(path, chain), nil
}

// checkpoints keeps a nil *audit.Checkpointer from becoming a non-nil
// interface.
func checkpoints(c *audit.Checkpointer) admin.Checkpoints {
	if c == nil {
		return nil
	}
	return c
}

// auditAlarms counts and raises what the audit writer finds wrong with
// its store: records lost after they were committed, and records the
// store refused as data (dead letters).
type auditAlarms struct {
	raise *alert.Raiser // nil: no alert provider configured
	gaps  atomic.Int64
	dead  atomic.Int64
}

// newAuditAlarms registers the alarms' metrics; raise (nil without an
// alert provider) raises their alerts under ALERT_ON.
func newAuditAlarms(metrics *telemetry.Metrics, raise *alert.Raiser) *auditAlarms {
	a := &auditAlarms{raise: raise}
	metrics.Gauge("meshguard_audit_gaps", "Times this process found the store had lost audit records it had committed.",
		func() float64 { return float64(a.gaps.Load()) })
	metrics.Counter("meshguard_audit_dead_letters_total", "Audit records the store refused as data and this process dead-lettered (kept outside the hash chain).",
		func() float64 { return float64(a.dead.Load()) })
	return a
}

// deadLetter is audit.WriterConfig.OnDeadLetter: a critical alert (the
// error trigger), since a decision's record is outside the chain. The
// alert names the record and the store's refusal, not its content.
func (a *auditAlarms) deadLetter(d audit.DeadLetter) {
	a.dead.Add(1)
	a.raise.Failure("the audit store refused a record as data; it is dead-lettered, outside the hash chain",
		fmt.Errorf("record %s of %s: %s", d.ID, d.Timestamp.UTC().Format(time.RFC3339Nano), d.Error))
}

// gap is audit.WriterConfig.OnGap: a critical alert (the error trigger),
// since the trail has lost records.
func (a *auditAlarms) gap(g audit.Gap) {
	a.gaps.Add(1)
	a.raise.Failure("the audit store lost records it had committed", errors.New(g.String()))
}
