package audit_test

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"testing"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/store"
)

// TestCheckpointerWillNotSignADeletedTail: records are deleted from the
// chain's end after a checkpoint. The next checkpoint — the periodic one,
// the one signed at shutdown, or one signed by the next process, which
// reads the last from DATA_DIR — would sign the shortened trail, and
// `audit verify --incremental` (which starts from it) said "intact". Now
// the checkpointer signs only heads that still reach its last checkpoint,
// and keeps that one, so --incremental reports the deletion.
func TestCheckpointerWillNotSignADeletedTail(t *testing.T) {
	for _, restart := range []bool{false, true} {
		name := map[bool]string{false: "same process", true: "next process"}[restart]
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			dbPath := filepath.Join(dir, "meshguard.db")
			s, err := store.OpenSQLite(context.Background(), dbPath)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.Close() })
			signer, err := audit.LoadCheckpointKey(filepath.Join(dir, audit.CheckpointKeyFile))
			if err != nil {
				t.Fatal(err)
			}
			newCheckpointer := func() *audit.Checkpointer {
				return &audit.Checkpointer{Heads: s, Signer: signer, Path: filepath.Join(dir, audit.CheckpointFile)}
			}
			c := newCheckpointer()
			prev := audit.GenesisHash
			rs := make([]audit.Record, 10)
			for i := range rs {
				rs[i] = record(i)
				if err := rs[i].Seal(prev); err != nil {
					t.Fatal(err)
				}
				prev = rs[i].Hash
			}
			if err := s.AppendAudit(context.Background(), rs); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Sign(context.Background()); err != nil {
				t.Fatal(err)
			}
			db, err := sql.Open("sqlite", "file:"+dbPath)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if _, err := db.Exec(`DELETE FROM audit WHERE seq > 7`); err != nil {
				t.Fatal(err)
			}
			if restart {
				c = newCheckpointer()
			}
			_, signErr := c.Sign(context.Background())
			if !errors.Is(signErr, audit.ErrCheckpointNotReached) {
				t.Errorf("signing the shortened trail: %v, want ErrCheckpointNotReached", signErr)
			}
			// What `verify --incremental` starts from: the server's last
			// checkpoint, or DATA_DIR's file.
			cp, err := audit.ReadCheckpoint(filepath.Join(dir, audit.CheckpointFile), signer.VerifierKey())
			if err != nil {
				t.Fatal(err)
			}
			for _, from := range []*audit.Checkpoint{c.Last(), &cp} {
				if from == nil {
					t.Fatal("no last checkpoint")
				}
				if _, err := audit.Verify(context.Background(), s, audit.VerifyOptions{Checkpoint: from}); !errors.Is(err, audit.ErrCheckpointNotReached) {
					t.Errorf("verify from the last checkpoint: %v, want the deleted tail reported", err)
				}
			}
		})
	}
}
