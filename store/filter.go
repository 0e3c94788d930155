package store

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/meshguard/meshguard/identity"
	"github.com/meshguard/meshguard/trust"
)

// List limits (every query is bounded; docs/api.md#limits).
const (
	// DefaultListLimit is the page size when AgentFilter.Limit is 0.
	DefaultListLimit = 100
	// MaxListLimit is the largest page ListAgents returns.
	MaxListLimit = 1000
)

// ErrInvalidFilter is returned for a filter that cannot be run as given
// (bad limit, unknown tier or status). The admin API maps it to 400.
var ErrInvalidFilter = errors.New("invalid filter")

// AgentFilter selects agents for ListAgents. Zero fields do not filter.
// Results are ordered by name, byte-wise; page through them by passing the
// last name of one page as After for the next.
type AgentFilter struct {
	Tier   *trust.Tier     // only agents with exactly this tier
	Status identity.Status // only agents with this status
	Tag    string          // only agents carrying this tag
	After  string          // only agents whose name sorts after this one
	Limit  int             // at most this many; 0 means DefaultListLimit
}

// limit returns the number of rows to fetch, or an error for a bad filter.
func (f AgentFilter) limit() (int, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidFilter, fmt.Sprintf(format, args...))
	}
	if f.Tier != nil && !f.Tier.Valid() {
		return 0, bad("tier: unknown tier %d", *f.Tier)
	}
	switch f.Status {
	case "", identity.StatusActive, identity.StatusRevoked:
	default:
		return 0, bad("status %q: expected active or revoked", f.Status)
	}
	if len(f.Tag) > 1024 || len(f.After) > identity.MaxNameLen {
		return 0, bad("tag or after too long")
	}
	switch {
	case f.Limit < 0 || f.Limit > MaxListLimit:
		return 0, bad("limit %d: expected 0 (default %d) to %d", f.Limit, DefaultListLimit, MaxListLimit)
	case f.Limit == 0:
		return DefaultListLimit, nil
	}
	return f.Limit, nil
}

// listQuery builds ListAgents' query. The tag test is passed in because it
// is the one clause that differs by dialect (json_each here, jsonb ? there).
func (f AgentFilter) listQuery(columns, tagClause string) (string, []any, error) {
	limit, err := f.limit()
	if err != nil {
		return "", nil, err
	}
	var b strings.Builder
	args := []any{f.After}
	b.WriteString("SELECT " + columns + " FROM agents WHERE name > $1")
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if f.Tier != nil {
		b.WriteString(" AND trust_tier = " + arg(f.Tier.String()))
	}
	if f.Status != "" {
		b.WriteString(" AND status = " + arg(string(f.Status)))
	}
	if f.Tag != "" {
		b.WriteString(" AND " + strings.ReplaceAll(tagClause, "$tag", arg(f.Tag)))
	}
	b.WriteString(" ORDER BY name LIMIT " + arg(limit))
	return b.String(), args, nil
}
