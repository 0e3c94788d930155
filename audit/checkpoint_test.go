package audit_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshguard/meshguard/audit"
)

func TestCheckpointSignAndOpen(t *testing.T) {
	s, err := audit.NewCheckpointSigner(audit.GenerateCheckpointKey())
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 3, 2, 10, 0, 0, 5, time.UTC)
	h := strings.Repeat("ab", 32)
	cp, err := s.Sign(at, []audit.ChainPosition{{Chain: "b-2", Seq: 7, Hash: h}, {Chain: "", Seq: 3, Hash: audit.GenesisHash}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := audit.OpenCheckpoint(cp.Note, s.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	if !got.Time.Equal(at) || len(got.Chains) != 2 || got.Chains[0].Chain != "" || got.Chains[1] != (audit.ChainPosition{Chain: "b-2", Seq: 7, Hash: h}) {
		t.Fatalf("opened %+v", got)
	}
	other, _ := audit.NewCheckpointSigner(audit.GenerateCheckpointKey())
	for _, tc := range []struct {
		name, note, key string
	}{
		{"position changed", strings.Replace(cp.Note, " 7 ", " 6 ", 1), s.VerifierKey()},
		{"hash changed", strings.Replace(cp.Note, h, strings.Repeat("cd", 32), 1), s.VerifierKey()},
		{"time changed", strings.Replace(cp.Note, "2026-03-02", "2026-03-03", 1), s.VerifierKey()},
		{"chain dropped", strings.Replace(cp.Note, `chain "b-2" 7 `+h+"\n", "", 1), s.VerifierKey()},
		{"another key", cp.Note, other.VerifierKey()},
		{"unsigned", strings.Split(cp.Note, "\n\n")[0] + "\n", s.VerifierKey()},
		{"not a key", cp.Note, "meshguard-audit+00000000+AAAA"},
		{"empty", "", s.VerifierKey()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := audit.OpenCheckpoint(tc.note, tc.key); !errors.Is(err, audit.ErrBadCheckpoint) {
				t.Fatalf("OpenCheckpoint = %v, want ErrBadCheckpoint", err)
			}
		})
	}
	// A file pinned to another key than the one it names is refused.
	if _, err := audit.ParseCheckpoint([]byte(`{"key":"`+s.VerifierKey()+`","note":`+quote(cp.Note)+`}`), other.VerifierKey()); !errors.Is(err, audit.ErrBadCheckpoint) {
		t.Fatalf("pinned to another key: %v", err)
	}
	if _, err := audit.ParseCheckpoint([]byte(cp.Note), s.VerifierKey()); err != nil {
		t.Fatalf("a bare note: %v", err)
	}
}

func quote(s string) string {
	r := strings.NewReplacer("\\", "\\\\", "\"", "\\\"", "\n", "\\n")
	return `"` + r.Replace(s) + `"`
}

func TestCheckpointKeyIsCreatedOnceAndPrivate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit-checkpoint.key")
	a, err := audit.LoadCheckpointKey(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, %v; want mode 0600", st, err)
	}
	b, err := audit.LoadCheckpointKey(path)
	if err != nil || b.VerifierKey() != a.VerifierKey() {
		t.Fatalf("reloaded key %v, %v; want the same key", b, err)
	}
	if err := os.WriteFile(path, []byte("PRIVATE+KEY+meshguard-audit+00+bad"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := audit.LoadCheckpointKey(path); !errors.Is(err, audit.ErrBadCheckpoint) {
		t.Fatalf("a damaged key: %v", err)
	}
}

func TestCheckpointerWritesAVerifiableFile(t *testing.T) {
	s := newStore(t)
	w, err := audit.NewWriter(context.Background(), s, audit.WriterConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := w.Write(context.Background(), record(i)); err != nil {
			t.Fatal(err)
		}
	}
	signer, _ := audit.NewCheckpointSigner(audit.GenerateCheckpointKey())
	path := filepath.Join(t.TempDir(), "checkpoint.json")
	c := &audit.Checkpointer{Heads: s, Signer: signer, Path: path}
	if _, err := c.Sign(context.Background()); err != nil {
		t.Fatal(err)
	}
	cp, err := audit.ReadCheckpoint(path, signer.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	if len(cp.Chains) != 1 || cp.Chains[0].Hash != c.Last().Chains[0].Hash {
		t.Fatalf("file %+v, last %+v", cp, c.Last())
	}
	if _, err := audit.Verify(context.Background(), s, audit.VerifyOptions{Checkpoint: &cp}); err != nil {
		t.Fatal(err)
	}
}
