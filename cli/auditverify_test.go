package cli

import (
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meshguard/meshguard/admin"
	"github.com/meshguard/meshguard/audit"
)

// TestAuditCheckpointCatchesDeletedTail: an operator keeps a signed
// checkpoint; someone with database access then deletes the newest
// records. What is left still links (plain verify cannot tell), but verify
// against the checkpoint — through the server or reading the store
// directly — reports that the trail no longer reaches it.
func TestAuditCheckpointCatchesDeletedTail(t *testing.T) {
	signer, err := audit.NewCheckpointSigner(audit.GenerateCheckpointKey())
	if err != nil {
		t.Fatal(err)
	}
	l := newLiveWith(t, func(c *admin.Config) {
		c.Checkpoints = &audit.Checkpointer{Heads: c.Audit, Signer: signer}
	})
	chainTraffic(t, l)

	out := l.must(t, "audit", "checkpoint")
	var cp audit.Checkpoint
	if err := json.Unmarshal([]byte(out), &cp); err != nil || len(cp.Chains) != 1 || cp.Key != signer.VerifierKey() {
		t.Fatalf("audit checkpoint: %v\n%s", err, out)
	}
	file := filepath.Join(t.TempDir(), "checkpoint.json")
	if err := os.WriteFile(file, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
	for i := range 4 { // more records after the checkpoint
		r := audit.Record{ID: "aud_after_" + strconv.Itoa(i), Timestamp: time.Now(), AgentID: "agent_x", Action: "read:x", Decision: "allow", Status: 200, Mode: "enforce"}
		if err := l.f.Audit.Write(t.Context(), r); err != nil {
			t.Fatal(err)
		}
	}
	key := signer.VerifierKey()

	out = l.must(t, "audit", "verify", "--checkpoint", file, "--key", key)
	if !strings.Contains(out, "✓ audit trail intact: 4 records verified in 1 chain(s), 1 from the checkpoint") {
		t.Fatalf("verify --checkpoint before the deletion:\n%s", out)
	}
	out = l.must(t, "audit", "verify", "--data-dir", l.f.Dir, "--checkpoint", file, "--key", key)
	if !strings.Contains(out, "✓ audit trail intact: 4 records verified") {
		t.Fatalf("verify --data-dir --checkpoint before the deletion:\n%s", out)
	}

	db, err := sql.Open("sqlite", filepath.Join(l.f.Dir, "meshguard.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// The 4 records after the checkpoint and the checkpointed one.
	if _, err := db.Exec(`DELETE FROM audit WHERE seq > (SELECT MAX(seq) - 5 FROM audit)`); err != nil {
		t.Fatal(err)
	}
	if out := l.must(t, "audit", "verify"); !strings.Contains(out, "✓ audit trail intact: 3 records") {
		t.Fatalf("plain verify after the deletion (the chain alone cannot tell):\n%s", out)
	}
	for _, args := range [][]string{
		{"audit", "verify", "--checkpoint", file, "--key", key},
		{"audit", "verify", "--data-dir", l.f.Dir, "--checkpoint", file, "--key", key},
	} {
		code, stdout, stderr := l.mg(t, args...)
		if code != ExitFailure || !strings.Contains(stdout, "no longer reaches the checkpoint") && !strings.Contains(stdout, "records were deleted from its end") {
			t.Fatalf("%v after the deletion: exit %d\n%s%s", args, code, stdout, stderr)
		}
	}

	// A checkpoint signed by another key, or edited, is refused as such.
	other, _ := audit.NewCheckpointSigner(audit.GenerateCheckpointKey())
	if code, _, stderr := l.mg(t, "audit", "verify", "--checkpoint", file, "--key", other.VerifierKey()); code != ExitUsage || !strings.Contains(stderr, "no valid signature") {
		t.Fatalf("another key: exit %d\n%s", code, stderr)
	}
	edited := filepath.Join(t.TempDir(), "edited.json")
	if err := os.WriteFile(edited, []byte(strings.Replace(string(mustRead(t, file)), `\"\" 4 `, `\"\" 3 `, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := l.mg(t, "audit", "verify", "--data-dir", l.f.Dir, "--checkpoint", edited); code != ExitUsage || !strings.Contains(stderr, "no valid signature") {
		t.Fatalf("an edited checkpoint: exit %d\n%s", code, stderr)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
