package api

import (
	"fmt"
	"log/slog"
	"time"
)

// String shows a delegation without its token, so printing one (%v, %+v)
// or logging one does not hand the chain to whoever reads the log. The
// token travels only as JSON (the answer of POST /v1/delegations) and in
// the X-MeshGuard-Delegation header.
func (t DelegationToken) String() string {
	return fmt.Sprintf("delegation chain %v scope %v max chain %d expires %s (token redacted)",
		t.Chain, t.Scope, t.MaxChain, t.ExpiresAt.UTC().Format(time.RFC3339))
}

// GoString is String for %#v.
func (t DelegationToken) GoString() string { return t.String() }

// LogValue is the delegation for log/slog, without its token.
func (t DelegationToken) LogValue() slog.Value {
	return slog.GroupValue(slog.Any("chain", t.Chain), slog.Any("scope", t.Scope),
		slog.Int("maxChain", t.MaxChain), slog.Time("expiresAt", t.ExpiresAt))
}
