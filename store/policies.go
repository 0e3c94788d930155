package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"time"
	"unicode/utf8"

	"github.com/meshguard/meshguard/identity"
)

// Limits on stored policies (docs/api.md#limits). They match the policy package's: a
// stored policy is one document of a policy file, and the stored policies
// together with the files form one set.
const (
	// MaxPolicyYAMLBytes bounds one stored policy's YAML.
	MaxPolicyYAMLBytes = 4 << 20
	// MaxStoredPolicies bounds how many policies the store keeps.
	MaxStoredPolicies = 10000
)

// ErrInvalidPolicy: a stored policy's name or YAML breaks the store's rules
// (empty, too long, not UTF-8, too many). The admin API maps it to 400. The
// store does not parse the YAML: the caller validates policies before
// storing them.
var ErrInvalidPolicy = errors.New("invalid stored policy")

// policyNamePattern is the policy package's rule for policy names: they are
// used in URLs (/admin/policies/{name}) and headers.
var policyNamePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// StoredPolicy is one policy applied through the admin API.
type StoredPolicy struct {
	Name string
	// YAML is the policy's document as it was applied.
	YAML      string
	CreatedAt time.Time
	// UpdatedAt changes on every PutPolicy of the name, strictly later.
	UpdatedAt time.Time
}

// checkPolicy validates p for writing.
func checkPolicy(p StoredPolicy) error {
	switch {
	case !policyNamePattern.MatchString(p.Name):
		return fmt.Errorf("%w: name %q: expected 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit", ErrInvalidPolicy, p.Name)
	case p.YAML == "":
		return fmt.Errorf("%w: policy %q: empty YAML", ErrInvalidPolicy, p.Name)
	case len(p.YAML) > MaxPolicyYAMLBytes:
		return fmt.Errorf("%w: policy %q: YAML is %d bytes, over the limit of %d", ErrInvalidPolicy, p.Name, len(p.YAML), MaxPolicyYAMLBytes)
	case !utf8.ValidString(p.YAML):
		return fmt.Errorf("%w: policy %q: YAML is not valid UTF-8", ErrInvalidPolicy, p.Name)
	}
	return nil
}

// PutPolicy stores the policy name with its YAML, replacing a stored policy
// of that name (its CreatedAt is kept, UpdatedAt moves on). It returns the
// policy as stored.
func (s *db) PutPolicy(ctx context.Context, name, yaml string) (StoredPolicy, error) {
	out, err := s.PutPolicies(ctx, []StoredPolicy{{Name: name, YAML: yaml}})
	if err != nil {
		return StoredPolicy{}, err
	}
	return out[0], nil
}

// PutPolicies stores several policies in one transaction, each as PutPolicy
// would: all are stored or, on any error, none. Only Name and YAML of each
// are read; a name may appear once. It returns the policies as stored, in
// the order given. ErrInvalidPolicy for a bad name or YAML, a repeated name,
// or a total beyond MaxStoredPolicies.
func (s *db) PutPolicies(ctx context.Context, ps []StoredPolicy) ([]StoredPolicy, error) {
	seen := make(map[string]bool, len(ps))
	for _, p := range ps {
		if err := checkPolicy(p); err != nil {
			return nil, fmt.Errorf("put policies: %w", err)
		}
		if seen[p.Name] {
			return nil, fmt.Errorf("put policies: %w: policy %q given twice", ErrInvalidPolicy, p.Name)
		}
		seen[p.Name] = true
	}
	if len(ps) == 0 {
		return []StoredPolicy{}, nil
	}
	now := stamp(s.now)
	out := make([]StoredPolicy, len(ps))
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		// What is stored already, read once: at most MaxStoredPolicies
		// small rows, where a query per policy would cost a round trip each.
		type times struct{ created, updated int64 }
		existing := map[string]times{}
		rows, err := tx.QueryContext(ctx, `SELECT name, created_at, updated_at FROM policies`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var (
				name string
				t    times
			)
			if err := rows.Scan(&name, &t.created, &t.updated); err != nil {
				return err
			}
			existing[name] = t
		}
		if err := rows.Err(); err != nil {
			return err
		}
		total := len(existing)
		for _, p := range ps {
			if _, ok := existing[p.Name]; !ok {
				total++
			}
		}
		if total > MaxStoredPolicies {
			return fmt.Errorf("%w: this would make %d stored policies, more than the limit of %d", ErrInvalidPolicy, total, MaxStoredPolicies)
		}
		insert, err := tx.PrepareContext(ctx, `INSERT INTO policies (name, yaml, created_at, updated_at) VALUES ($1, $2, $3, $3)`)
		if err != nil {
			return err
		}
		defer insert.Close()
		update, err := tx.PrepareContext(ctx, `UPDATE policies SET yaml = $2, updated_at = $3 WHERE name = $1`)
		if err != nil {
			return err
		}
		defer update.Close()
		for i, p := range ps {
			old, ok := existing[p.Name]
			if !ok {
				if _, err := insert.ExecContext(ctx, p.Name, p.YAML, toMicros(now)); err != nil {
					return err
				}
				out[i] = StoredPolicy{Name: p.Name, YAML: p.YAML, CreatedAt: now, UpdatedAt: now}
				continue
			}
			up := bumped(now, fromMicros(old.updated))
			if _, err := update.ExecContext(ctx, p.Name, p.YAML, toMicros(up)); err != nil {
				return err
			}
			out[i] = StoredPolicy{Name: p.Name, YAML: p.YAML, CreatedAt: fromMicros(old.created), UpdatedAt: up}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("put policies: %w", err)
	}
	return out, nil
}

// GetPolicy returns the stored policy name, or identity.ErrNotFound.
func (s *db) GetPolicy(ctx context.Context, name string) (StoredPolicy, error) {
	var (
		p                StoredPolicy
		created, updated int64
	)
	err := s.r.QueryRowContext(ctx, `SELECT name, yaml, created_at, updated_at FROM policies WHERE name = $1`, name).
		Scan(&p.Name, &p.YAML, &created, &updated)
	if err != nil {
		return StoredPolicy{}, fmt.Errorf("get policy %q: %w", name, notFoundOr(err))
	}
	p.CreatedAt, p.UpdatedAt = fromMicros(created), fromMicros(updated)
	return p, nil
}

// ListPolicies returns every stored policy in byte-wise name order (at most
// MaxStoredPolicies: PutPolicies keeps it so). Never nil.
func (s *db) ListPolicies(ctx context.Context) ([]StoredPolicy, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT name, yaml, created_at, updated_at FROM policies ORDER BY name LIMIT $1`, MaxStoredPolicies)
	if err != nil {
		return nil, fmt.Errorf("list policies: %w", err)
	}
	defer rows.Close()
	out := []StoredPolicy{}
	for rows.Next() {
		var (
			p                StoredPolicy
			created, updated int64
		)
		if err := rows.Scan(&p.Name, &p.YAML, &created, &updated); err != nil {
			return nil, fmt.Errorf("list policies: %w", err)
		}
		p.CreatedAt, p.UpdatedAt = fromMicros(created), fromMicros(updated)
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list policies: %w", err)
	}
	return out, nil
}

// DeletePolicy deletes the stored policy name, or returns
// identity.ErrNotFound.
func (s *db) DeletePolicy(ctx context.Context, name string) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM policies WHERE name = $1`, name)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if n == 0 {
			return identity.ErrNotFound
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete policy %q: %w", name, err)
	}
	return nil
}
