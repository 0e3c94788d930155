package store

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/meshguard/meshguard/identity"
	"github.com/meshguard/meshguard/trust"
)

// Times are kept as unix microseconds: PostgreSQL's timestamptz has exactly
// that precision, so both backends hand back identical values, and integers
// sort and compare correctly where RFC 3339 text with trimmed zeros does not.

// toMicros converts t for storage.
func toMicros(t time.Time) int64 { return t.UnixMicro() }

// fromMicros converts a stored time back, in UTC.
func fromMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }

// stamp is the time a backend records for now: UTC, microsecond precision,
// so that the value a write returns equals the value a later read returns.
func stamp(now func() time.Time) time.Time { return now().UTC().Truncate(time.Microsecond) }

// bumped returns the updated_at to record over prev: now, or one microsecond
// past prev when the clock has not moved (or moved back), so every change
// shows as a strictly later updated_at that caches can compare.
func bumped(now, prev time.Time) time.Time {
	if now.After(prev) {
		return now
	}
	return prev.Add(time.Microsecond)
}

// Limits on ids the store accepts from callers (ids it generates always fit).
const maxIDLen = 64

// checkAgent validates a for writing. create says whether an empty id is
// allowed (the store then assigns one).
func checkAgent(a identity.Agent, create bool) error {
	if err := a.Validate(); err != nil {
		return err
	}
	switch {
	case a.ID == "" && !create:
		return fmt.Errorf("%w: id: must not be empty", identity.ErrInvalidAgent)
	case a.ID != "":
		if err := checkID(a.ID); err != nil {
			return err
		}
	}
	// JSON would quietly replace invalid UTF-8 with U+FFFD, storing
	// something other than what was given.
	for k, v := range a.Metadata {
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			return fmt.Errorf("%w: metadata: key %q: keys and values must be valid UTF-8", identity.ErrInvalidAgent, k)
		}
	}
	// Validate allows a host twice; the host index cannot hold it.
	seen := make(map[string]bool, len(a.Hosts))
	for _, h := range a.Hosts {
		if seen[h] {
			return fmt.Errorf("%w: hosts: %q listed twice", identity.ErrInvalidAgent, h)
		}
		seen[h] = true
	}
	return nil
}

// checkID accepts "agent_" followed by letters, digits, '_' or '-': wider
// than NewAgentID's alphabet so ids imported from elsewhere fit, narrow
// enough to be safe in host names, URLs and log lines.
func checkID(id string) error {
	rest, ok := strings.CutPrefix(id, identity.IDPrefix)
	if !ok || rest == "" || len(id) > maxIDLen {
		return fmt.Errorf("%w: id %q: expected %q followed by up to %d letters or digits", identity.ErrInvalidAgent, id, identity.IDPrefix, maxIDLen-len(identity.IDPrefix))
	}
	for _, r := range rest {
		if (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') && (r < '0' || r > '9') && r != '_' && r != '-' {
			return fmt.Errorf("%w: id %q: unexpected character %q", identity.ErrInvalidAgent, id, r)
		}
	}
	return nil
}

// agentRow is an agent in its column encoding.
type agentRow struct {
	id, name, tier, tags, hosts, spiffeIDs, metadata, status string
	createdAt, updatedAt                                     int64
}

// encodeAgent converts a checked agent to its columns.
func encodeAgent(a identity.Agent) (agentRow, error) {
	tier, err := a.TrustTier.MarshalText()
	if err != nil {
		return agentRow{}, fmt.Errorf("%w: trustTier: %w", identity.ErrInvalidAgent, err)
	}
	tags, err := json.Marshal(nonNil(a.Tags))
	if err != nil {
		return agentRow{}, fmt.Errorf("encode tags: %w", err)
	}
	hosts, err := json.Marshal(nonNil(a.Hosts))
	if err != nil {
		return agentRow{}, fmt.Errorf("encode hosts: %w", err)
	}
	spiffeIDs, err := json.Marshal(nonNil(a.SPIFFEIDs))
	if err != nil {
		return agentRow{}, fmt.Errorf("encode spiffeIds: %w", err)
	}
	md := a.Metadata
	if md == nil {
		md = map[string]string{}
	}
	// json.Marshal sorts map keys, so equal metadata is stored identically.
	metadata, err := json.Marshal(md)
	if err != nil {
		return agentRow{}, fmt.Errorf("encode metadata: %w", err)
	}
	return agentRow{
		id: a.ID, name: a.Name, tier: string(tier), status: string(a.Status),
		tags: string(tags), hosts: string(hosts), spiffeIDs: string(spiffeIDs), metadata: string(metadata),
		createdAt: toMicros(a.CreatedAt), updatedAt: toMicros(a.UpdatedAt),
	}, nil
}

// decode converts stored columns back. A row that does not decode is
// reported, never papered over with defaults: it means the database was
// edited outside MeshGuard.
func (r agentRow) decode() (identity.Agent, error) {
	a := identity.Agent{
		ID: r.id, Name: r.name, Status: identity.Status(r.status),
		CreatedAt: fromMicros(r.createdAt), UpdatedAt: fromMicros(r.updatedAt),
	}
	tier, err := trust.Parse(r.tier)
	if err != nil {
		return identity.Agent{}, fmt.Errorf("decode agent %s: trust_tier: %w", r.id, err)
	}
	a.TrustTier = tier
	if err := json.Unmarshal([]byte(r.tags), &a.Tags); err != nil {
		return identity.Agent{}, fmt.Errorf("decode agent %s: tags: %w", r.id, err)
	}
	if err := json.Unmarshal([]byte(r.hosts), &a.Hosts); err != nil {
		return identity.Agent{}, fmt.Errorf("decode agent %s: hosts: %w", r.id, err)
	}
	if err := json.Unmarshal([]byte(r.spiffeIDs), &a.SPIFFEIDs); err != nil {
		return identity.Agent{}, fmt.Errorf("decode agent %s: spiffe_ids: %w", r.id, err)
	}
	if err := json.Unmarshal([]byte(r.metadata), &a.Metadata); err != nil {
		return identity.Agent{}, fmt.Errorf("decode agent %s: metadata: %w", r.id, err)
	}
	// Empty, not nil, so the admin API renders [] and {} rather than null.
	a.Tags, a.Hosts, a.SPIFFEIDs = nonNil(a.Tags), nonNil(a.Hosts), nonNil(a.SPIFFEIDs)
	if a.Metadata == nil {
		a.Metadata = map[string]string{}
	}
	return a, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// normalizeHost prepares a host for lookup. Stored hosts are lower-case (the
// identity rules insist), and DNS names compare case-insensitively, so a Host
// header in any case finds its agent.
func normalizeHost(h string) string { return strings.ToLower(h) }

// Limits on keys. HS256 never reaches the store: its secret comes from the
// environment (JWT_SECRET), not from rotation.
const maxKIDLen = 128

// checkKey validates a key handed to RotateKey.
func checkKey(k identity.StoredKey) error {
	switch {
	case k.KID == "" || len(k.KID) > maxKIDLen:
		return fmt.Errorf("kid %q: expected 1 to %d characters", k.KID, maxKIDLen)
	case k.Alg != identity.AlgEdDSA && k.Alg != identity.AlgES256:
		return fmt.Errorf("kid %q: alg %q: expected %s or %s", k.KID, k.Alg, identity.AlgEdDSA, identity.AlgES256)
	case len(k.PrivateDER) == 0:
		return fmt.Errorf("kid %q: empty private key", k.KID)
	case k.CreatedAt.IsZero():
		return fmt.Errorf("kid %q: CreatedAt not set", k.KID)
	case !k.RetiredAt.IsZero():
		return fmt.Errorf("kid %q: a new current key cannot be retired already", k.KID)
	}
	return nil
}
