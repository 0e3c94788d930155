package store

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/meshguard/meshguard/audit"
)

// Following the trail as it is written. One position for the whole trail
// is not enough on PostgreSQL: each replica appends to its own chain, and
// positions come from one sequence, so a batch of one chain can commit
// after a later-numbered batch of another is already visible; a follower
// that had moved past the later one would never see it. Within one chain
// batches commit in position order (the chain's head row serializes
// them), so a follower keeps one position per chain.

// MaxFollowChains bounds the chains a FollowCursor lists. Beyond it, the
// chains with the oldest positions (those written longest ago: every
// process start begins a chain) share Floor: a record such a chain has
// numbered but not yet committed when it is folded in could be missed.
const MaxFollowChains = 256

// maxChainName bounds a chain's name in a cursor.
const maxChainName = 255

// maxFollowCursor bounds an encoded cursor.
const maxFollowCursor = 4 * MaxFollowChains * (maxChainName + 24)

// FollowCursor is where a follow of the trail is: for each chain, the
// position of the last record it has passed; a chain it does not list
// (created after the follow began, or folded in beyond MaxFollowChains)
// is followed after Floor.
type FollowCursor struct {
	Floor  int64            `json:"f"`
	Chains map[string]int64 `json:"c"`
}

const followPrefix = "f"

// pos is where the follow of chain id is.
func (c *FollowCursor) pos(id string) int64 {
	if p, ok := c.Chains[id]; ok {
		return p
	}
	return c.Floor
}

// set records that chain id is followed to seq, folding the chains with
// the oldest positions into Floor beyond MaxFollowChains.
func (c *FollowCursor) set(id string, seq int64) {
	if c.Chains == nil {
		c.Chains = map[string]int64{}
	}
	c.Chains[id] = seq
	for len(c.Chains) > MaxFollowChains {
		oldest, at := "", int64(-1)
		for k, p := range c.Chains {
			if at < 0 || p < at || (p == at && k < oldest) {
				oldest, at = k, p
			}
		}
		delete(c.Chains, oldest)
		c.Floor = max(c.Floor, at)
	}
}

// Encode is the cursor as the API hands it out: opaque to callers.
func (c *FollowCursor) Encode() string {
	b, _ := json.Marshal(c) // a map of strings to integers always encodes
	return followPrefix + base64.RawURLEncoding.EncodeToString(b)
}

// DecodeFollowCursor reads a cursor Encode made. A query's position
// cursor ("c…", from GET /admin/audit's newestCursor) is taken as a Floor
// for every chain, as follows were before they kept one per chain.
func DecodeFollowCursor(s string) (FollowCursor, error) {
	bad := fmt.Errorf("%w: cursor %.40q is not one MeshGuard gave", ErrInvalidFilter, s)
	if strings.HasPrefix(s, cursorPrefix) {
		seq, err := decodeCursor(s)
		return FollowCursor{Floor: seq}, err
	}
	if !strings.HasPrefix(s, followPrefix) || len(s) > maxFollowCursor {
		return FollowCursor{}, bad
	}
	raw, err := base64.RawURLEncoding.DecodeString(s[len(followPrefix):])
	if err != nil {
		return FollowCursor{}, bad
	}
	var c FollowCursor
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if dec.Decode(&c) != nil || dec.More() || c.Floor < 0 || len(c.Chains) > MaxFollowChains {
		return FollowCursor{}, bad
	}
	for k, p := range c.Chains {
		if p < 0 || len(k) > maxChainName {
			return FollowCursor{}, bad
		}
	}
	return c, nil
}

// FollowFromNow is a cursor at every chain's current end.
func (s *db) FollowFromNow(ctx context.Context) (FollowCursor, error) {
	heads, err := s.AuditChains(ctx)
	if err != nil {
		return FollowCursor{}, fmt.Errorf("follow audit: %w", err)
	}
	var c FollowCursor
	for _, h := range heads {
		c.set(h.ID, h.Seq)
	}
	return c, nil
}

// FollowAudit calls fn with each record matching f (its After and Limit
// unused) that the chains hold past cur, chain after chain, each in its
// order, moving cur along: at each call cur includes the record, and once
// a chain is read cur is at its end, past records the filter skipped. A
// record is read once its chain's end is: so one committed late, with an
// earlier position than records of other chains already seen, is still
// delivered, and none is delivered twice.
func (s *db) FollowAudit(ctx context.Context, f AuditFilter, cur *FollowCursor, fn func(r audit.Record, cur *FollowCursor) error) error {
	f.After, f.Before, f.Limit = "", "", 0
	// An agent with no records yet is matched by number noAgent: the
	// chains are still read, so the cursor moves past what it skipped.
	where, args, _, err := s.resolve(ctx, f)
	if err != nil {
		return fmt.Errorf("follow audit: %w", err)
	}
	// The ends and each chain's length are read in one statement; within a
	// chain, everything up to its end is committed.
	heads, err := s.AuditChains(ctx)
	if err != nil {
		return fmt.Errorf("follow audit: %w", err)
	}
	slices.SortFunc(heads, func(a, b audit.ChainHead) int { return strings.Compare(a.ID, b.ID) })
	n := len(args)
	if where == "" {
		where = " WHERE "
	} else {
		where += " AND "
	}
	q := `SELECT ` + s.auditSelect() + ` FROM audit` + where + fmt.Sprintf(`chain_id = $%d AND seq > $%d AND seq <= $%d ORDER BY seq`, n+1, n+2, n+3)
	for _, h := range heads {
		from := cur.pos(h.ID)
		if h.Seq <= from {
			continue
		}
		err := s.scanAuditRows(ctx, q, append(args[:n:n], h.ID, from, h.Seq), func(seq int64, r audit.Record) error {
			cur.set(h.ID, seq)
			if f.Shadow && r.Shadow == nil {
				return nil // the text search's superset
			}
			return fn(r, cur)
		})
		if err != nil {
			return fmt.Errorf("follow audit chain %q: %w", h.ID, err)
		}
		cur.set(h.ID, h.Seq)
	}
	return nil
}
