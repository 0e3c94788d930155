package server

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/meshguard/meshguard/api"
	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/client"
	"github.com/meshguard/meshguard/config"
	"github.com/meshguard/meshguard/store"
	"github.com/meshguard/meshguard/store/pgtest"
)

// follower collects what a follow delivers: how many times each id, and
// the cursor each line carried.
type follower struct {
	mu      sync.Mutex
	seen    map[string]int
	cursors map[string]string
	done    chan error
}

func follow(t *testing.T, ctx context.Context, c *client.Client, after string) *follower {
	t.Helper()
	f := &follower{seen: map[string]int{}, cursors: map[string]string{}, done: make(chan error, 1)}
	go func() {
		f.done <- c.FollowAudit(ctx, client.AuditFilter{}, after, func(l api.AuditLine) error {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.seen[l.ID]++
			f.cursors[l.ID] = l.Cursor
			return nil
		})
	}()
	return f
}

func (f *follower) has(ids ...string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, id := range ids {
		if f.seen[id] == 0 {
			return false
		}
	}
	return true
}

// check fails unless exactly want were delivered, each once.
func (f *follower) check(t *testing.T, name string, want []string) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	wanted := map[string]bool{}
	for _, id := range want {
		wanted[id] = true
		if f.seen[id] != 1 {
			t.Errorf("%s: %s delivered %d times, want once", name, id, f.seen[id])
		}
	}
	for id, n := range f.seen {
		if !wanted[id] {
			t.Errorf("%s: %s delivered %d times, want never", name, id, n)
		}
	}
}

// TestAuditFollowAcrossChainsMissesNoLateCommit: two replicas append to
// two chains of one PostgreSQL database. One replica's record is numbered
// first but commits last (its transaction is held open); meanwhile the
// other replica's later-numbered records are committed and followed.
// Before the fix the follow kept one position for the whole trail, had
// moved past the held record's number, and never delivered it. Now it
// keeps one position per chain: every record is delivered exactly once,
// and a follow resumed from a line's cursor delivers exactly what came
// after that line.
func TestAuditFollowAcrossChainsMissesNoLateCommit(t *testing.T) {
	u := pgtest.NewDatabase(t)
	r := start(t, func(c *config.Config) { c.DatabaseURL = u })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	writer := func(chain string) *audit.Writer {
		s, err := store.OpenPostgres(ctx, u, store.WithAuditChain(chain))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		w, err := audit.NewWriter(ctx, s, audit.WriterConfig{}) // each Write stores its record
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = w.Close(context.Background()) })
		return w
	}
	a, b := writer("replica-a"), writer("replica-b")
	n := 0
	write := func(w *audit.Writer, name string) string {
		t.Helper()
		n++
		id := fmt.Sprintf("aud_%s_%03d", name, n)
		if err := w.Write(ctx, audit.Record{ID: id, Timestamp: time.Now(), AgentID: "agent_a", Action: "read:" + name,
			Decision: "allow", Status: 200, Source: "api", Mode: "enforce"}); err != nil {
			t.Fatalf("write %s: %v", id, err)
		}
		return id
	}
	// Both chains exist before the follow starts; none of this is followed.
	write(a, "a")
	write(b, "b")

	raw, err := sql.Open("pgx", u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = raw.Close() })
	// replica-b's inserts wait, after taking their positions, for a lock
	// the test holds: its transaction commits when the test says.
	for _, q := range []string{
		`CREATE FUNCTION test_hold() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_advisory_xact_lock_shared(4242); RETURN NEW; END $$`,
		`CREATE TRIGGER test_hold AFTER INSERT ON audit FOR EACH ROW WHEN (NEW.chain_id = 'replica-b') EXECUTE FUNCTION test_hold()`,
	} {
		if _, err := raw.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}

	// As `meshguard audit tail -f` does: a page, then a follow from its
	// follow cursor.
	page, err := r.admin.QueryAudit(ctx, client.AuditFilter{Limit: 1})
	if err != nil || page.FollowCursor == "" {
		t.Fatalf("page: %+v %v", page, err)
	}
	fctx, fcancel := context.WithCancel(ctx)
	defer fcancel()
	first := follow(t, fctx, r.admin, page.FollowCursor)

	holder, err := raw.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = holder.Rollback() }()
	if _, err := holder.ExecContext(ctx, `SELECT pg_advisory_xact_lock(4242)`); err != nil {
		t.Fatal(err)
	}
	lateID := fmt.Sprintf("aud_b_late_%d", time.Now().UnixNano())
	lateDone := make(chan error, 1)
	go func() {
		lateDone <- b.Write(ctx, audit.Record{ID: lateID, Timestamp: time.Now(), AgentID: "agent_a", Action: "read:late",
			Decision: "allow", Status: 200, Source: "api", Mode: "enforce"})
	}()
	eventually(t, "replica-b's insert waiting with its position taken", func() bool {
		var waiting int
		err := raw.QueryRowContext(ctx, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted`).Scan(&waiting)
		return err == nil && waiting > 0
	})
	// replica-a's later-numbered records commit and are followed first.
	var want []string
	for range 3 {
		want = append(want, write(a, "a"))
	}
	eventually(t, "replica-a's records followed", func() bool { return first.has(want...) })
	if err := holder.Rollback(); err != nil { // releases the lock: the held record commits
		t.Fatal(err)
	}
	if err := <-lateDone; err != nil {
		t.Fatal(err)
	}
	want = append(want, lateID, write(a, "a"), write(b, "b"), write(b, "b"), write(a, "a"))
	var seqs string
	if err := raw.QueryRowContext(ctx, `SELECT string_agg(encode(id, 'hex') || '@' || seq, ' ' ORDER BY seq) FROM audit`).Scan(&seqs); err != nil {
		t.Fatal(err)
	}
	t.Logf("positions: %s", seqs)
	eventually(t, "every record followed", func() bool { return first.has(want...) })
	// One more record on each chain, followed: the follow has read both
	// chains past everything above, so what it delivered of that (each
	// once, nothing else) is all it will.
	passed := func(f *follower) []string {
		t.Helper()
		ends := []string{write(a, "a"), write(b, "b")}
		eventually(t, "the follow past both chains' ends", func() bool { return f.has(ends...) })
		return ends
	}
	want = append(want, passed(first)...)
	first.check(t, "the follow", want)

	// Resumed from the cursor of the first record followed, a follow
	// delivers every later one once, and not that one.
	second := follow(t, fctx, r.admin, first.cursors[want[0]])
	eventually(t, "the resumed follow", func() bool { return second.has(want[1:]...) })
	second.check(t, "the resumed follow", append(want[1:], passed(second)...))

	fcancel()
	for _, f := range []*follower{first, second} {
		if err := <-f.done; err != nil {
			t.Fatalf("follow: %v", err)
		}
	}
}
