package cli

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshguard/meshguard/identity"
)

// TestOnlineTokensRevoke: `tokens revoke` with the token in a file and
// with --jti and --agent (a name), then `tokens revoked` as a table and as
// JSON; each revoked token is refused by the server's verifier, the
// agent's third token is not, and no output ever shows a token.
func TestOnlineTokensRevoke(t *testing.T) {
	l := newLive(t)
	leaked := strings.TrimSpace(l.must(t, "agent", "create", "researcher", "--trust", "verified", "--ttl", "1h"))
	second := strings.TrimSpace(l.must(t, "agent", "token", "researcher", "--ttl", "1h"))
	third := strings.TrimSpace(l.must(t, "agent", "token", "researcher", "--ttl", "1h"))
	jti := l.verifyToken(t, second, "").Claims.ID

	file := filepath.Join(t.TempDir(), "leaked.jwt")
	if err := os.WriteFile(file, []byte(leaked+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := l.mg(t, "tokens", "revoke", "--token-file", file, "--reason", "pasted in a ticket")
	if code != 0 || !strings.Contains(out+errOut, "✓ revoked token ") {
		t.Fatalf("revoke --token-file: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = l.mg(t, "tokens", "revoke", "--jti", jti, "--agent", "researcher")
	if code != 0 || !strings.Contains(out+errOut, "✓ revoked token "+jti) {
		t.Fatalf("revoke --jti --agent: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = l.mg(t, "tokens", "revoke", leaked)
	if code != 0 || !strings.Contains(out+errOut, "revoked already") {
		t.Fatalf("revoking again: exit %d\n%s%s", code, out, errOut)
	}
	for _, tok := range []string{leaked, second} {
		if _, err := l.f.Cached.Verify(t.Context(), tok); !errors.Is(err, identity.ErrTokenRevoked) {
			t.Errorf("a revoked token: %v, want ErrTokenRevoked", err)
		}
	}
	if _, err := l.f.Cached.Verify(t.Context(), third); err != nil {
		t.Errorf("the token no one revoked: %v", err)
	}

	table := l.must(t, "tokens", "revoked")
	if !strings.Contains(table, "JTI") || !strings.Contains(table, jti) || !strings.Contains(table, "pasted in a ticket") || strings.Contains(table, "eyJ") {
		t.Errorf("tokens revoked:\n%s", table)
	}
	list := decodeJSON[[]identity.RevokedToken](t, l.must(t, "tokens", "revoked", "--json"))
	if len(list) != 2 || list[0].ExpiresAt.Before(time.Now()) {
		t.Errorf("tokens revoked --json: %+v", list)
	}
}

// TestTokensRevokeUsage: what names no one token, or names it twice, is a
// usage error (exit 2) before anything is sent; what the server refuses
// is an error that says why, and quotes no token.
func TestTokensRevokeUsage(t *testing.T) {
	l := newLive(t)
	tok := strings.TrimSpace(l.must(t, "agent", "create", "researcher", "--ttl", "1h"))
	empty := filepath.Join(t.TempDir(), "empty.jwt")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"tokens", "revoke"},
		{"tokens", "revoke", "--jti", "abc"},
		{"tokens", "revoke", "--agent", "researcher"},
		{"tokens", "revoke", tok, "--jti", "abc", "--agent", "researcher"},
		{"tokens", "revoke", tok, "--token-file", empty},
		{"tokens", "revoke", "--token-file", empty},
		{"tokens", "revoke", "--token-file", filepath.Join(t.TempDir(), "missing")},
		{"tokens", "revoke", tok, tok},
	} {
		before := l.requests.Load()
		code, out, errOut := l.mg(t, args...)
		if code != ExitUsage || l.requests.Load() != before {
			t.Errorf("%v: exit %d (%d requests sent)\n%s%s; want exit %d and nothing sent", args, code, l.requests.Load()-before, out, errOut, ExitUsage)
		}
	}
	code, out, errOut := l.mg(t, "tokens", "revoke", "--jti", "two words", "--agent", "researcher")
	if code == 0 || !strings.Contains(errOut, "jti: expected") {
		t.Errorf("a jti of the wrong shape: exit %d\n%s%s", code, out, errOut)
	}
	forged := tok[:strings.LastIndexByte(tok, '.')+1] + strings.Repeat("A", 86)
	code, out, errOut = l.mg(t, "tokens", "revoke", forged)
	if code == 0 || !strings.Contains(errOut, "signature") || strings.Contains(out+errOut, forged) {
		t.Errorf("a forged token: exit %d\n%s%s", code, out, errOut)
	}
	if got := l.must(t, "tokens", "revoked"); !strings.Contains(got, "no revoked tokens") {
		t.Errorf("refused revocations were stored:\n%s", got)
	}
}
