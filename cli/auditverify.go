package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/meshguard/meshguard/api"
	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/client"
	"github.com/meshguard/meshguard/store"
)

// verifyFlags are audit verify's options.
type verifyFlags struct {
	checkpoint, key, dataDir, databaseURL string
	incremental                           bool
}

func (a *app) auditVerifyCmd() *cobra.Command {
	var f verifyFlags
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Check the hash chain: report the first record edited, deleted or reordered",
		Long: "Walks every stored chain from its start (or the retention anchor) and recomputes every\n" +
			"hash. With --checkpoint FILE (printed by `meshguard audit checkpoint`) it first proves the\n" +
			"trail still reaches that signed head — records deleted from the end are caught — and\n" +
			"verifies only what came after it; --incremental does so from the last checkpoint the\n" +
			"server signed. By default the server verifies (streaming its progress, so no request\n" +
			"timeout applies); with --data-dir or --database-url this command reads the store itself.\n" +
			"Progress goes to stderr when it is a terminal. Exit code 0 when the trail holds, 1 when\n" +
			"it does not or the verification could not finish.",
		Example: "  meshguard audit verify\n" +
			"  meshguard audit checkpoint > cp.json; …; meshguard audit verify --checkpoint cp.json --key meshguard-audit+…\n" +
			"  meshguard audit verify --data-dir /var/lib/meshguard --incremental",
		Args: exactArgs(0),
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			if f.dataDir != "" && f.databaseURL != "" {
				return usageErr("--data-dir and --database-url: give one")
			}
			if f.checkpoint != "" && f.incremental {
				return usageErr("--checkpoint and --incremental: give one")
			}
			var cpFile []byte
			if f.checkpoint != "" {
				var err error
				if cpFile, err = readLimited(f.checkpoint, 16<<20); err != nil {
					return usageErr("--checkpoint: %v", err)
				}
			}
			progress := a.progress()
			var res api.AuditVerifyResult
			var err error
			if f.dataDir != "" || f.databaseURL != "" {
				res, err = a.verifyOffline(cmd.Context(), f, cpFile, progress)
			} else {
				var c *client.Client
				if c, err = a.adminClient(); err != nil {
					return err
				}
				res, err = c.VerifyAuditStream(cmd.Context(), api.AuditVerifyRequest{Checkpoint: string(cpFile), Key: f.key, Incremental: f.incremental}, progress)
				err = a.apiErr(err)
			}
			progress(-1)
			if err != nil {
				if cmd.Context().Err() != nil {
					return &ExitError{Code: ExitFailure, Err: errors.New("verification cancelled: the trail was neither found intact nor broken")}
				}
				return err
			}
			return a.reportVerify(&res, f.key)
		}),
	}
	fl := cmd.Flags()
	fl.StringVar(&f.checkpoint, "checkpoint", "", "a checkpoint file: prove the trail still reaches it, and verify from it")
	fl.StringVar(&f.key, "key", "", "the verifier key the checkpoint must be signed with (meshguard-audit+…; logged at start and in `audit checkpoint`)")
	fl.BoolVar(&f.incremental, "incremental", false, "verify from the last checkpoint signed (the server's, or DATA_DIR's with --data-dir)")
	fl.StringVar(&f.dataDir, "data-dir", "", "read the SQLite store in this DATA_DIR directly, not through the server")
	fl.StringVar(&f.databaseURL, "database-url", "", "read this PostgreSQL database directly, not through the server")
	return cmd
}

// readLimited reads a file of at most limit bytes.
func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, limit)
	}
	return b, nil
}

// verifyOffline opens the store itself and verifies it here.
func (a *app) verifyOffline(ctx context.Context, f verifyFlags, cpFile []byte, progress func(int64)) (api.AuditVerifyResult, error) {
	var trail audit.Chains
	if f.dataDir != "" {
		path := filepath.Join(f.dataDir, "meshguard.db")
		if _, err := os.Stat(path); err != nil {
			return api.AuditVerifyResult{}, usageErr("--data-dir: %v", err)
		}
		s, err := store.OpenSQLite(ctx, path)
		if err != nil {
			return api.AuditVerifyResult{}, fmt.Errorf("--data-dir: %w", err)
		}
		defer s.Close()
		trail = s
	} else {
		s, err := store.OpenPostgres(ctx, f.databaseURL)
		if err != nil {
			return api.AuditVerifyResult{}, fmt.Errorf("--database-url: %w", err)
		}
		defer s.Close()
		trail = s
	}
	opts := audit.VerifyOptions{Progress: progress, ProgressEvery: 10_000}
	var cp audit.Checkpoint
	var err error
	switch {
	case cpFile != nil:
		cp, err = audit.ParseCheckpoint(cpFile, f.key)
	case f.incremental && f.dataDir == "":
		return api.AuditVerifyResult{}, usageErr("--incremental: reading PostgreSQL directly has no last checkpoint; give --checkpoint FILE")
	case f.incremental:
		key := f.key
		if key == "" {
			// DATA_DIR's own key: the file next to it must be signed by it.
			raw, kerr := os.ReadFile(filepath.Join(f.dataDir, audit.CheckpointKeyFile))
			if kerr != nil {
				return api.AuditVerifyResult{}, usageErr("--incremental: %v", kerr)
			}
			signer, kerr := audit.NewCheckpointSigner(string(raw))
			if kerr != nil {
				return api.AuditVerifyResult{}, usageErr("--incremental: %v", kerr)
			}
			key = signer.VerifierKey()
		}
		cp, err = audit.ReadCheckpoint(filepath.Join(f.dataDir, audit.CheckpointFile), key)
	}
	if err != nil {
		return api.AuditVerifyResult{}, usageErr("checkpoint: %v", err)
	}
	var used *api.AuditCheckpointUsed
	if cp.Note != "" {
		opts.Checkpoint = &cp
		used = &api.AuditCheckpointUsed{Time: cp.Time, Key: cp.Key}
	}
	rep, err := audit.Verify(ctx, trail, opts)
	res := api.AuditVerifyResult{OK: err == nil, Verified: rep.Verified, Chains: rep.Chains, Anchored: rep.Anchored,
		FromCheckpoint: rep.FromCheckpoint, Notes: rep.Notes, Checkpoint: used, Gaps: rep.Gaps, DeadLetters: rep.DeadLetters}
	var b *audit.Break
	switch {
	case errors.Is(err, audit.ErrGap), errors.Is(err, audit.ErrDeadLettered):
	case errors.As(err, &b):
		res.Break = &api.AuditBreak{Chain: b.Chain, Index: b.Index, ID: b.ID, Why: b.Why}
	case err != nil:
		return res, err
	}
	return res, nil
}

// reportVerify prints a verification's result and returns its exit.
func (a *app) reportVerify(res *api.AuditVerifyResult, pinned string) error {
	if a.g.json {
		if err := a.printJSON(res); err != nil {
			return err
		}
	} else {
		for _, n := range res.Notes {
			a.note("note: %s", n)
		}
		switch {
		case res.Cancelled:
			a.say("✗ verification cancelled after %s: the trail was neither found intact nor broken", count(res.Verified, "record"))
		case res.Error != "":
			a.say("✗ %s (after %s)", res.Error, count(res.Verified, "record"))
		case res.Break == nil && (len(res.Gaps) > 0 || res.DeadLetters != nil):
			if len(res.Gaps) > 0 {
				a.say("✗ audit trail has lost records: %s verified in %s, but the store lost records after committing them (%s):", count(res.Verified, "record"), count(res.Chains, "chain"), count(len(res.Gaps), "gap"))
				for _, g := range res.Gaps {
					a.say("  %s", printable(g.String()))
				}
			}
			if d := res.DeadLetters; d != nil {
				a.say("✗ audit trail has dead-lettered records: %s verified in %s, but the store refused records as data:", count(res.Verified, "record"), count(res.Chains, "chain"))
				a.say("  %s", printable(d.String()))
				a.say("  see meshguard audit deadletter")
			}
		case res.OK:
			from := ""
			if res.Anchored > 0 {
				from += ", " + count(res.Anchored, "chain") + " from a retention anchor"
			}
			if cp := res.Checkpoint; cp != nil {
				from += fmt.Sprintf(", %s from the checkpoint of %s, which the trail still reaches", count(res.FromCheckpoint, "chain"), cp.Time.UTC().Format(time.RFC3339))
			}
			a.say("✓ audit trail intact: %s verified in %s%s", count(res.Verified, "record"), count(res.Chains, "chain"), from)
			if cp := res.Checkpoint; cp != nil && pinned == "" && !cp.SignedHere {
				a.note("warning: the checkpoint's signature was checked against the key it names (%s); pass --key to pin the key you trust", cp.Key)
			}
		default:
			where := ""
			if res.Break.Chain != "" {
				where = " of chain " + res.Break.Chain
			}
			if res.Break.ID == "" {
				a.say("✗ audit trail broken%s: %s", where, res.Break.Why)
			} else {
				// The index as --json gives it (from 0): the text and the
				// JSON must name the same record the same way.
				a.say("✗ audit trail broken at index %d%s (%s): %s", res.Break.Index, where, res.Break.ID, res.Break.Why)
			}
			a.say("  %s before it verified", count(res.Verified, "record"))
		}
	}
	if !res.OK {
		return &ExitError{Code: ExitFailure} // the lines above said why
	}
	return nil
}

// progress returns a progress reporter: on stderr, rewriting one line,
// only when stderr is a terminal (never into a log or a pipe). -1 ends it.
func (a *app) progress() func(int64) {
	f, ok := a.Stderr.(*os.File)
	if !ok || !isTerminal(f) {
		return func(int64) {}
	}
	start := time.Now()
	shown := false
	return func(n int64) {
		if n < 0 {
			if shown {
				fmt.Fprint(f, "\r\033[K")
			}
			return
		}
		shown = true
		rate := float64(n) / max(time.Since(start).Seconds(), 0.001)
		fmt.Fprintf(f, "\rverifying: %s (%.0f/s)…\033[K", count(n, "record"), rate)
	}
}

func (a *app) auditCheckpointCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "checkpoint",
		Short: "Print the trail's current heads, signed: a file `audit verify --checkpoint` checks later",
		Long: "Has the server sign every chain's current head (position and hash) with its Ed25519\n" +
			"checkpoint key and prints it as JSON. Keep the output somewhere the database's\n" +
			"administrators cannot write; `meshguard audit verify --checkpoint FILE --key KEY` later\n" +
			"proves the trail still reaches it. The server also signs one every\n" +
			"AUDIT_CHECKPOINT_SECONDS and at shutdown.",
		Example: "  meshguard audit checkpoint > checkpoint-$(date +%F).json",
		Args:    exactArgs(0),
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			c, err := a.adminClient()
			if err != nil {
				return err
			}
			cp, err := c.AuditCheckpoint(cmd.Context())
			if err != nil {
				return a.apiErr(err)
			}
			return a.printJSON(cp)
		}),
	}
}
