package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/meshguard/meshguard/store"
)

func outboxTests() []test {
	return []test{{"ClaimDeliverFail", testOutbox}, {"SurvivesReopen", testOutboxReopen}, {"ConcurrentClaims", testOutboxConcurrent}}
}

func testOutbox(t *testing.T, open func(*testing.T) Backend) {
	b := openClosed(t, open)
	ctx := t.Context()
	now := time.Now()
	if got, err := b.ClaimAlerts(ctx, "webhook", now, time.Minute, 10); err != nil || len(got) != 0 {
		t.Fatalf("empty outbox: %v %v", got, err)
	}
	err := b.EnqueueAlerts(ctx, []store.OutboxAlert{
		{Provider: "webhook", AlertID: "alt_1", Payload: `{"id":"alt_1","message":"a\u0000b"}`},
		{Provider: "slack", AlertID: "alt_1", Payload: `{"id":"alt_1"}`},
		{Provider: "webhook", AlertID: "alt_2", Payload: `{"id":"alt_2"}`},
		{Provider: "webhook", AlertID: "alt_3", Payload: `{"id":"alt_3"}`, NextAt: now.Add(time.Hour)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := b.CountOutbox(ctx); err != nil || n["webhook"] != 3 || n["slack"] != 1 {
		t.Fatalf("count %v %v", n, err)
	}
	// Due ones, oldest first, within the limit; a later one waits.
	got, err := b.ClaimAlerts(ctx, "webhook", now.Add(time.Second), time.Minute, 1)
	if err != nil || len(got) != 1 || got[0].AlertID != "alt_1" || got[0].Payload != `{"id":"alt_1","message":"a\u0000b"}` || got[0].Attempts != 0 {
		t.Fatalf("first claim %+v %v", got, err)
	}
	first := got[0]
	got, err = b.ClaimAlerts(ctx, "webhook", now.Add(time.Second), time.Minute, 10)
	if err != nil || len(got) != 1 || got[0].AlertID != "alt_2" {
		t.Fatalf("second claim (alt_1 is leased, alt_3 not due): %+v %v", got, err)
	}
	// A failure counts and reschedules; a delivery removes.
	if err := b.AlertFailed(ctx, first.ID, now.Add(2*time.Second), "webhook answered 503"); err != nil {
		t.Fatal(err)
	}
	if err := b.AlertDelivered(ctx, got[0].ID); err != nil {
		t.Fatal(err)
	}
	got, err = b.ClaimAlerts(ctx, "webhook", now.Add(3*time.Second), time.Minute, 10)
	if err != nil || len(got) != 1 || got[0].ID != first.ID || got[0].Attempts != 1 || got[0].LastError != "webhook answered 503" {
		t.Fatalf("the failed one again: %+v %v", got, err)
	}
	// The lease runs out: due again (the deliverer died).
	got, err = b.ClaimAlerts(ctx, "webhook", now.Add(2*time.Minute), time.Minute, 10)
	if err != nil || len(got) != 1 || got[0].ID != first.ID {
		t.Fatalf("after the lease: %+v %v", got, err)
	}
	if n, _ := b.CountOutbox(ctx); n["webhook"] != 2 {
		t.Fatalf("count after one delivery: %v", n)
	}
}

func testOutboxReopen(t *testing.T, open func(*testing.T) Backend) {
	b := open(t)
	ctx := t.Context()
	if err := b.EnqueueAlerts(ctx, []store.OutboxAlert{{Provider: "email", AlertID: "alt_9", Payload: `{}`}}); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b = openClosed(t, open)
	got, err := b.ClaimAlerts(ctx, "email", time.Now().Add(time.Second), time.Minute, 10)
	if err != nil || len(got) != 1 || got[0].AlertID != "alt_9" {
		t.Fatalf("after reopening: %+v %v", got, err)
	}
	if err := b.EnqueueAlerts(ctx, make([]store.OutboxAlert, store.MaxOutbox)); !errors.Is(err, store.ErrOutboxFull) {
		t.Fatalf("beyond the bound: %v", err)
	}
}

// testOutboxConcurrent: claimers running at once (replicas) never get the
// same alert.
func testOutboxConcurrent(t *testing.T, open func(*testing.T) Backend) {
	b := openClosed(t, open)
	ctx := t.Context()
	rows := make([]store.OutboxAlert, 60)
	for i := range rows {
		rows[i] = store.OutboxAlert{Provider: "webhook", AlertID: fmt.Sprintf("alt_%d", i), Payload: `{}`}
	}
	if err := b.EnqueueAlerts(ctx, rows); err != nil {
		t.Fatal(err)
	}
	now := time.Now().Add(time.Second)
	var mu sync.Mutex
	seen := map[int64]int{}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				got, err := b.ClaimAlerts(ctx, "webhook", now, time.Hour, 5)
				if err != nil {
					t.Error(err)
					return
				}
				if len(got) == 0 {
					return
				}
				mu.Lock()
				for _, a := range got {
					seen[a.ID]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(seen) != len(rows) {
		t.Fatalf("%d alerts claimed, want %d", len(seen), len(rows))
	}
	for id, n := range seen {
		if n != 1 {
			t.Fatalf("alert %d claimed %d times", id, n)
		}
	}
}
