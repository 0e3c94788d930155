package cli

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meshguard/meshguard/admin"
	"github.com/meshguard/meshguard/api"
	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/client"
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
	if !strings.Contains(out, "✓ audit trail intact: 4 records verified in 1 chain, 1 chain from the checkpoint") {
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

// TestVerifyIsNotBoundToTheRequestTimeout: a trail that takes longer to
// verify than the client's request timeout is verified in full through
// the stream (the one-answer GET times out), progress is reported on the
// way, and a verification the caller cancels ends as cancelled, not as an
// internal error.
func TestVerifyIsNotBoundToTheRequestTimeout(t *testing.T) {
	l := newLive(t)
	const total = 20_000
	prev := audit.GenesisHash
	for n := 0; n < total; n += 1000 {
		rs := make([]audit.Record, 1000)
		for i := range rs {
			rs[i] = audit.Record{ID: "aud_" + strconv.Itoa(n+i), Timestamp: time.Now(), AgentID: "agent_a", Action: "read:x",
				Decision: "allow", Status: 200, Mode: "enforce", Path: "/docs/" + strconv.Itoa(i)}
			if err := rs[i].Seal(prev); err != nil {
				t.Fatal(err)
			}
			prev = rs[i].Hash
		}
		if err := l.f.Store.AppendAudit(t.Context(), rs); err != nil {
			t.Fatal(err)
		}
	}
	c, err := client.New(client.Config{BaseURL: l.url, AdminToken: testAdminToken, Timeout: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.VerifyAudit(t.Context()); err == nil {
		t.Skip("the machine verified the trail within 20 ms: the timeout cannot be shown")
	}
	// The stream's response headers are still bound by the 20 ms (only its
	// body is not): on a loaded machine they can come late, so a header
	// timeout before any progress line is tried again. Were the whole
	// stream bound by the timeout, every attempt would fail.
	var seen []int64
	var res api.AuditVerifyResult
	for attempt := 1; ; attempt++ {
		seen = nil
		res, err = c.VerifyAuditStream(t.Context(), api.AuditVerifyRequest{}, func(n int64) { seen = append(seen, n) })
		var ne net.Error
		if attempt < 5 && len(seen) == 0 && errors.As(err, &ne) && ne.Timeout() {
			t.Logf("attempt %d: %v", attempt, err)
			continue
		}
		break
	}
	if err != nil || !res.OK || res.Verified != total {
		t.Fatalf("streamed verification: %+v, %v", res, err)
	}
	if len(seen) == 0 || seen[0] != 0 {
		t.Fatalf("progress lines %v: want the first at once, saying 0", seen)
	}
	t.Logf("progress lines: %v", seen)

	// Cancelled at the first progress line (sent as the walk starts): the
	// caller's cancellation, neither a result nor a server failure.
	ctx, cancel := context.WithCancel(t.Context())
	res, err = c.VerifyAuditStream(ctx, api.AuditVerifyRequest{}, func(int64) { cancel() })
	if !errors.Is(err, context.Canceled) || res.OK || res.Break != nil {
		t.Fatalf("cancelled verification: %+v, %v", res, err)
	}
	// Read directly, a cancelled walk is ctx's error, not a break.
	ctx, cancel = context.WithCancel(t.Context())
	_, err = audit.Verify(ctx, l.f.Store, audit.VerifyOptions{ProgressEvery: 1000, Progress: func(int64) { cancel() }})
	var brk *audit.Break
	if !errors.Is(err, context.Canceled) || errors.As(err, &brk) {
		t.Fatalf("cancelled offline verification: %v", err)
	}
	code, stdout, stderr := runEnv(t, l.env(), "audit", "verify", "--data-dir", l.f.Dir)
	if code != 0 || !strings.Contains(stdout, "20000 records verified") {
		t.Fatalf("offline verify: %d\n%s%s", code, stdout, stderr)
	}
}
