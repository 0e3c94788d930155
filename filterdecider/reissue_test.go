package filterdecider_test

import (
	"context"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/filterconfig/filtertest"
)

// TestReissuedRecordIsTheFreshOne: a cached allow's record is a copy of
// the one kept with the cached decision (engine.KeepRecord), with only
// its id, decision id, time, trace, span and latency its own. For every
// allow of the table, the record of a repeat (served from the cache, a
// second later) equals the record the engine built afresh for the first
// request in every other field, and those fields are the repeat's.
func TestReissuedRecordIsTheFreshOne(t *testing.T) {
	env := filtertest.New(t)
	now := filtertest.Now
	rec := &records{}
	local := newDecider(t, env, 0, &now, rec)
	ctx := context.Background()
	allows := 0
	for _, c := range env.Cases() {
		r, bad := request(&c)
		if bad != "" || c.Defer || c.Status != 200 {
			continue
		}
		t.Run(c.Name, func(t *testing.T) {
			now = filtertest.Now
			first, err := local.Check(ctx, new(r))
			if err != nil {
				t.Fatal(err)
			}
			fresh := rec.list[len(rec.list)-1]
			now = now.Add(time.Second)
			again, err := local.Check(ctx, new(r))
			if err != nil {
				t.Fatal(err)
			}
			if again.ID == first.ID {
				t.Fatalf("the repeat was given decision id %s again", again.ID)
			}
			got := rec.list[len(rec.list)-1]
			for _, f := range []struct{ name, got, want string }{
				{"id", got.ID, "aud_" + again.ID[len("dec_"):]},
				{"decision id", got.DecisionID, again.ID},
				{"trace id", got.TraceID, again.TraceID},
				{"span id", got.SpanID, again.SpanID},
				{"time", got.Timestamp.String(), again.Time.String()},
			} {
				if f.got != f.want {
					t.Errorf("the reissued record's %s is %q, want the repeat's %q", f.name, f.got, f.want)
				}
			}
			if got.Timestamp.Equal(fresh.Timestamp) {
				t.Errorf("the reissued record kept the first record's time %v", fresh.Timestamp)
			}
			if !reflect.DeepEqual(ownFieldsCleared(got), ownFieldsCleared(fresh)) {
				t.Fatalf("the reissued record differs from the fresh one beyond its own fields\nreissued: %+v\nfresh:    %+v",
					ownFieldsCleared(got), ownFieldsCleared(fresh))
			}
		})
		allows++
	}
	if allows == 0 || local.CachedDecisions() != allows {
		t.Fatalf("%d allows, %d cached: the table's allows were not served from the cache", allows, local.CachedDecisions())
	}
}

// ownFieldsCleared is rec without what is each request's own.
func ownFieldsCleared(rec audit.Record) audit.Record {
	rec.ID, rec.DecisionID, rec.TraceID, rec.SpanID = "", "", "", ""
	rec.Timestamp, rec.LatencyUs = time.Time{}, 0
	return rec
}

// TestCachedDecisionCannotBeChangedThroughAnAnswer: the cache hands the
// engine a pointer to its entry, not a copy; what a caller does to a
// decision it was given, and what Reissue does to make the next one,
// never reaches the entry: every repeat is the first allow again. The
// repeats run from two goroutines at once, so under -race a write to
// the shared entry shows.
func TestCachedDecisionCannotBeChangedThroughAnAnswer(t *testing.T) {
	env := filtertest.New(t)
	now := filtertest.Now
	local := newDecider(t, env, 0, &now, &records{})
	ctx := context.Background()
	for _, c := range env.Cases() {
		r, bad := request(&c)
		if bad != "" || c.Defer || c.Status != 200 {
			continue
		}
		t.Run(c.Name, func(t *testing.T) {
			first, err := local.Check(ctx, new(r))
			if err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			for range 2 {
				wg.Go(func() {
					for i := range 20 {
						d, err := local.Check(ctx, new(r))
						if err != nil {
							t.Error(err)
							return
						}
						if d.Effect != first.Effect || d.Reason != first.Reason || d.Rule != first.Rule || d.Status != first.Status ||
							d.Source != first.Source || d.Mode != first.Mode || !d.Allowed || d.SpanID == "" || d.ID == first.ID {
							t.Errorf("repeat %d: %+v\nwant the first allow %+v with ids of its own", i, d, first)
							return
						}
						spoil(&d)
					}
				})
			}
			wg.Wait()
		})
	}
}

// spoil changes every field of d a caller could change without reaching
// into a shared slice or map.
func spoil(d *engine.Decision) {
	d.ID, d.Effect, d.Reason, d.Message, d.Policy, d.Rule = "dec_x", "deny", "spoiled", "spoiled", "spoiled", "spoiled"
	d.AgentID, d.AgentName, d.Action, d.Resource, d.Revision = "x", "x", "x", "x", "x"
	d.Status, d.Allowed, d.Tier, d.Chain = 403, false, d.Tier+1, nil
	d.Source, d.Mode, d.TraceID, d.SpanID, d.Time = "x", "x", "x", "", time.Time{}
}
