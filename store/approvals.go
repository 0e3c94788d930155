package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/meshguard/meshguard/approval"
)

// Human approvals (docs/governance.md). A request for approval is raised,
// found again or used in one write transaction (RequestApproval), so
// concurrent retries — on one replica or on several sharing a PostgreSQL —
// raise one approval and use a use-once approval once: every write
// transaction takes the store's write lock (SQLite's one writer,
// PostgreSQL's advisory lock), and the partial unique index of migration
// approvals keeps one pending approval per binding even so.

const approvalColumns = `id, binding, status, agent_id, agent_name, chain, action, resource, call_method, call_name,
	arguments, arguments_digest, policy, rule, approvers, ttl_us, trace_id, decision_id, created_at, expires_at,
	decided_by, decided_at, decision_reason, uses, shown_query, shown_context, params, params_digest, shown_omitted`

// RequestApproval is what one request whose policy says approve gets, at
// now: the approved, unexpired approval of a's binding used (granted; a
// use-once approval becomes used), else the one that expired just now
// (expired), else the pending one (pending), else a denial whose window
// has not passed (denied), else a is stored as a new pending approval
// (requested). a must be a complete new approval (approval.Validate);
// past approval.MaxPendingPerAgent pending approvals of its agent, nothing
// is raised and the error is approval.ErrTooMany.
func (s *db) RequestApproval(ctx context.Context, a approval.Approval, now time.Time) (approval.Approval, approval.Outcome, error) {
	a.Status, a.Uses, a.DecidedBy, a.DecidedAt, a.DecisionReason = approval.Pending, 0, "", time.Time{}, ""
	if err := a.Validate(); err != nil {
		return approval.Approval{}, "", fmt.Errorf("request approval: %w", err)
	}
	at := toMicros(now)
	var (
		got     approval.Approval
		outcome approval.Outcome
	)
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		got, err = scanApproval(tx.QueryRowContext(ctx, `UPDATE approvals
			SET uses = uses + 1, status = CASE WHEN ttl_us = 0 THEN 'used' ELSE 'approved' END
			WHERE id = (SELECT id FROM approvals WHERE binding = $1 AND status = 'approved' AND expires_at > $2 ORDER BY id LIMIT 1)
			AND status = 'approved' RETURNING `+approvalColumns, a.Binding, at))
		if err == nil {
			outcome = approval.OutcomeGranted
			return nil
		} else if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		// What expired since the binding's last request is that request's
		// answer; its next retry raises a new approval.
		rows, err := tx.QueryContext(ctx, `UPDATE approvals SET status = 'expired'
			WHERE binding = $1 AND status IN ('pending', 'approved') AND expires_at <= $2 RETURNING `+approvalColumns, a.Binding, at)
		if err != nil {
			return err
		}
		expired, err := scanApprovals(rows)
		if err != nil {
			return err
		}
		if len(expired) > 0 {
			got, outcome = expired[len(expired)-1], approval.OutcomeExpired
			return nil
		}
		got, err = scanApproval(tx.QueryRowContext(ctx, `SELECT `+approvalColumns+` FROM approvals
			WHERE binding = $1 AND (status = 'pending' OR (status = 'denied' AND expires_at > $2)) ORDER BY id DESC LIMIT 1`, a.Binding, at))
		switch {
		case err == nil && got.Status == approval.Pending:
			outcome = approval.OutcomePending
			return nil
		case err == nil:
			outcome = approval.OutcomeDenied
			return nil
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		var pending int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM approvals WHERE agent_id = $1 AND status = 'pending' AND expires_at > $2`,
			a.AgentID, at).Scan(&pending); err != nil {
			return err
		}
		if pending >= approval.MaxPendingPerAgent {
			return fmt.Errorf("%w: agent %s has %d approvals pending (the limit)", approval.ErrTooMany, a.AgentID, pending)
		}
		if err := insertApproval(ctx, tx, &a); err != nil {
			return err
		}
		got, outcome = a, approval.OutcomeRequested
		return nil
	})
	if err != nil {
		return approval.Approval{}, "", fmt.Errorf("request approval for agent %s: %w", a.AgentID, err)
	}
	return got, outcome, nil
}

func insertApproval(ctx context.Context, tx *sql.Tx, a *approval.Approval) error {
	chain, err := json.Marshal(a.Chain)
	if err != nil {
		return err
	}
	approvers := []string{}
	if a.Approvers != nil {
		approvers = a.Approvers
	}
	apj, err := json.Marshal(approvers)
	if err != nil {
		return err
	}
	omitted := ""
	if len(a.Omitted) > 0 {
		b, err := json.Marshal(a.Omitted)
		if err != nil {
			return err
		}
		omitted = string(b)
	}
	a.CreatedAt, a.ExpiresAt = fromMicros(toMicros(a.CreatedAt)), fromMicros(toMicros(a.ExpiresAt))
	a.TTL = a.TTL.Truncate(time.Microsecond)
	_, err = tx.ExecContext(ctx, `INSERT INTO approvals (`+approvalColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, '', 0, '', 0, $21, $22, $23, $24, $25)`,
		a.ID, a.Binding, string(a.Status), a.AgentID, a.AgentName, string(chain), a.Action, a.Resource, a.Method, a.Name,
		string(a.Arguments), a.ArgumentsDigest, a.Policy, a.Rule, string(apj), a.TTL.Microseconds(), a.TraceID, a.DecisionID,
		toMicros(a.CreatedAt), toMicros(a.ExpiresAt), a.Query, string(a.Context), string(a.Params), a.ParamsDigest, omitted)
	if err != nil && isUniqueViolation(err) {
		return fmt.Errorf("%w: approval %s exists already", approval.ErrInvalid, a.ID)
	}
	return err
}

// GetApproval returns the approval with id as it stands now (a pending or
// approved one past its expiry reads as expired), or approval.ErrNotFound.
func (s *db) GetApproval(ctx context.Context, id string) (approval.Approval, error) {
	if !approval.ValidID(id) {
		return approval.Approval{}, fmt.Errorf("get approval: %w", approval.ErrNotFound)
	}
	a, err := scanApproval(s.r.QueryRowContext(ctx, `SELECT `+approvalColumns+` FROM approvals WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return approval.Approval{}, fmt.Errorf("get approval %s: %w", id, approval.ErrNotFound)
	}
	if err != nil {
		return approval.Approval{}, fmt.Errorf("get approval %s: %w", id, err)
	}
	return asOf(a, s.now()), nil
}

// ListApprovals returns the approvals f selects, newest first, as they
// stand now; an invalid f is approval.ErrInvalid.
func (s *db) ListApprovals(ctx context.Context, f approval.Filter) ([]approval.Approval, error) {
	if err := f.Validate(); err != nil {
		return nil, fmt.Errorf("list approvals: %w", err)
	}
	now := toMicros(s.now())
	var where []string
	args := []any{}
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	switch f.Status {
	case "":
	case approval.Pending, approval.Approved:
		where = append(where, "status = "+arg(string(f.Status))+" AND expires_at > "+arg(now))
	case approval.Expired:
		where = append(where, "(status = 'expired' OR (status IN ('pending', 'approved') AND expires_at <= "+arg(now)+"))")
	default:
		where = append(where, "status = "+arg(string(f.Status)))
	}
	if f.AgentID != "" {
		where = append(where, "agent_id = "+arg(f.AgentID))
	}
	if f.Before != "" {
		where = append(where, "id < "+arg(f.Before))
	}
	q := `SELECT ` + approvalColumns + ` FROM approvals`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY id DESC LIMIT " + arg(f.Limit)
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list approvals: %w", err)
	}
	out, err := scanApprovals(rows)
	if err != nil {
		return nil, fmt.Errorf("list approvals: %w", err)
	}
	for i := range out {
		out[i] = asOf(out[i], s.now())
	}
	return out, nil
}

// DecideApproval applies a person's decision to a pending approval, at the
// store's now: approval.ErrNotFound, approval.ErrExpired (past its expiry:
// it can no longer be approved) or approval.ErrNotPending (decided
// already) change nothing. An approved use-once approval may be used
// within the window it had while pending, counted from its approval; one
// with a TTL until its TTL runs out. A denied one keeps its expiry: retries
// of its request answer approval_denied until then.
func (s *db) DecideApproval(ctx context.Context, d approval.Decision) (approval.Approval, error) {
	if err := d.Validate(); err != nil {
		return approval.Approval{}, fmt.Errorf("decide approval: %w", err)
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	var got approval.Approval
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		a, err := scanApproval(tx.QueryRowContext(ctx, `SELECT `+approvalColumns+` FROM approvals WHERE id = $1`, d.ID))
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return approval.ErrNotFound
		case err != nil:
			return err
		}
		switch a = asOf(a, now); a.Status {
		case approval.Pending:
		case approval.Expired:
			return fmt.Errorf("%w at %s", approval.ErrExpired, a.ExpiresAt.Format(time.RFC3339))
		default:
			return fmt.Errorf("%w: it is %s", approval.ErrNotPending, a.Status)
		}
		a.Status, a.DecidedBy, a.DecidedAt, a.DecisionReason = approval.Denied, d.By, now, d.Reason
		if d.Approve {
			window := a.TTL
			if window == 0 {
				window = a.ExpiresAt.Sub(a.CreatedAt)
			}
			a.Status, a.ExpiresAt = approval.Approved, now.Add(window)
		}
		res, err := tx.ExecContext(ctx, `UPDATE approvals SET status = $1, decided_by = $2, decided_at = $3, decision_reason = $4, expires_at = $5
			WHERE id = $6 AND status = 'pending'`, string(a.Status), a.DecidedBy, toMicros(now), a.DecisionReason, toMicros(a.ExpiresAt), a.ID)
		if err != nil {
			return err
		}
		// The store's write lock makes the read above current; the row
		// count holds the decision to one winner even without it.
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n != 1 {
			return fmt.Errorf("%w: decided by someone else meanwhile", approval.ErrNotPending)
		}
		got = a
		return nil
	})
	if err != nil {
		return approval.Approval{}, fmt.Errorf("decide approval %s: %w", d.ID, err)
	}
	return got, nil
}

// asOf is a as it stands at now: pending or approved past its expiry is
// expired (the row is marked so by the next request of its binding).
func asOf(a approval.Approval, now time.Time) approval.Approval {
	if (a.Status == approval.Pending || a.Status == approval.Approved) && !a.ExpiresAt.After(now) {
		a.Status = approval.Expired
	}
	return a
}

func scanApproval(sc rowScanner) (approval.Approval, error) {
	var (
		a                                    approval.Approval
		status, chain, args, approvers       string
		shownCtx, params, omitted            string
		ttl, created, expires, decided, uses int64
	)
	if err := sc.Scan(&a.ID, &a.Binding, &status, &a.AgentID, &a.AgentName, &chain, &a.Action, &a.Resource, &a.Method, &a.Name,
		&args, &a.ArgumentsDigest, &a.Policy, &a.Rule, &approvers, &ttl, &a.TraceID, &a.DecisionID, &created, &expires,
		&a.DecidedBy, &decided, &a.DecisionReason, &uses, &a.Query, &shownCtx, &params, &a.ParamsDigest, &omitted); err != nil {
		return approval.Approval{}, err
	}
	a.Status = approval.Status(status)
	if err := json.Unmarshal([]byte(chain), &a.Chain); err != nil {
		return approval.Approval{}, fmt.Errorf("approval %s: chain: %w", a.ID, err)
	}
	if err := json.Unmarshal([]byte(approvers), &a.Approvers); err != nil {
		return approval.Approval{}, fmt.Errorf("approval %s: approvers: %w", a.ID, err)
	}
	if len(a.Approvers) == 0 {
		a.Approvers = nil
	}
	if args != "" {
		a.Arguments = json.RawMessage(args)
	}
	if shownCtx != "" {
		a.Context = json.RawMessage(shownCtx)
	}
	if params != "" {
		a.Params = json.RawMessage(params)
	}
	if omitted != "" {
		if err := json.Unmarshal([]byte(omitted), &a.Omitted); err != nil {
			return approval.Approval{}, fmt.Errorf("approval %s: omitted: %w", a.ID, err)
		}
	}
	a.TTL = time.Duration(ttl) * time.Microsecond
	a.CreatedAt, a.ExpiresAt = fromMicros(created), fromMicros(expires)
	if decided != 0 {
		a.DecidedAt = fromMicros(decided)
	}
	a.Uses = int(uses)
	return a, nil
}

func scanApprovals(rows *sql.Rows) ([]approval.Approval, error) {
	defer rows.Close()
	out := []approval.Approval{}
	for rows.Next() {
		a, err := scanApproval(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}
