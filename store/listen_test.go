package store_test

import (
	"context"
	"database/sql"
	"sync"
	"testing"
	"time"

	"github.com/meshguard/meshguard/store"
	"github.com/meshguard/meshguard/store/pgtest"
)

// feedNote is one call of a feed's function.
type feedNote struct {
	feed store.Feed
	key  string
}

// allFeeds are the five change feeds.
var allFeeds = []store.Feed{store.FeedAgents, store.FeedServices, store.FeedPolicies, store.FeedKeys, store.FeedRevokedTokens}

// watchAll runs watch with a function on every feed, on a goroutine ended
// with the test, and returns what reads its calls in order (failing the
// test after 10 s without one).
func watchAll(t *testing.T, watch func(ctx context.Context, fns map[store.Feed]func(string)) error) (next func() feedNote) {
	t.Helper()
	notes := make(chan feedNote, 64)
	fns := map[store.Feed]func(string){}
	for _, f := range allFeeds {
		fns[f] = func(k string) { notes <- feedNote{f, k} }
	}
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	wg.Go(func() {
		if err := watch(ctx, fns); err != nil {
			t.Errorf("Watch = %v", err)
		}
	})
	return func() feedNote {
		t.Helper()
		select {
		case n := <-notes:
			return n
		case <-time.After(10 * time.Second):
			t.Fatal("no notification in 10 s")
			return feedNote{}
		}
	}
}

// TestPostgresListenThenWatch: a change committed after Listen and before
// its Watch starts is notified by that Watch, first and with its key (the
// caller read everything before it after Listen: no "" is said); once the
// listening connection breaks, the failure is reported, and the Watch
// listens again and says "" on every feed (anything may have changed
// unseen), then notifies the changes after it.
func TestPostgresListenThenWatch(t *testing.T) {
	u := pgtest.NewDatabase(t)
	watcher, writer := openPostgres(t, u), openPostgres(t, u)
	l, err := watcher.Listen(t.Context(), allFeeds...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	// Committed between the listen and the watch: a start's reads are
	// there, so this one is either read or notified.
	if _, err := writer.PutPolicy(t.Context(), "early", "name: early\n"); err != nil {
		t.Fatal(err)
	}

	failures := make(chan error, 8)
	next := watchAll(t, func(ctx context.Context, fns map[store.Feed]func(string)) error {
		return l.Watch(ctx, fns, func(err error) { failures <- err })
	})
	if got, want := next(), (feedNote{store.FeedPolicies, "early"}); got != want {
		t.Fatalf("first notification %+v, want %+v (the change made before Watch, and no \"\")", got, want)
	}
	if _, err := writer.PutPolicy(t.Context(), "later", "name: later\n"); err != nil {
		t.Fatal(err)
	}
	if got, want := next(), (feedNote{store.FeedPolicies, "later"}); got != want {
		t.Fatalf("notified %+v, want %+v", got, want)
	}

	// Break the listening connection (the only one idle after a LISTEN).
	killer, err := sql.Open("pgx", u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = killer.Close() })
	var killed int
	if err := killer.QueryRowContext(t.Context(), `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid() AND query LIKE 'LISTEN %'`).Scan(&killed); err != nil {
		t.Fatal(err)
	}
	if killed != 1 {
		t.Fatalf("terminated %d listening connections, want 1", killed)
	}
	select {
	case err := <-failures:
		t.Logf("reported: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the broken connection was not reported in 10 s")
	}
	said := map[store.Feed]bool{}
	for range allFeeds {
		n := next()
		if n.key != "" {
			t.Fatalf("after reconnecting, %+v before \"\" was said on every feed (said on %v)", n, said)
		}
		said[n.feed] = true
	}
	if len(said) != len(allFeeds) {
		t.Fatalf("\"\" said on %v, want all five feeds", said)
	}
	if _, err := writer.PutPolicy(t.Context(), "after", "name: after\n"); err != nil {
		t.Fatal(err)
	}
	if got, want := next(), (feedNote{store.FeedPolicies, "after"}); got != want {
		t.Fatalf("after reconnecting, notified %+v, want %+v", got, want)
	}
}

// TestPostgresListenerWatchesItsFeeds: a Listener's Watch takes a function
// for every feed listened on and no other, and runs once; Listen refuses
// an unknown feed.
func TestPostgresListenerWatchesItsFeeds(t *testing.T) {
	s := openPostgres(t, pgtest.NewDatabase(t))
	if _, err := s.Listen(t.Context(), "meshguard_nothing"); err == nil {
		t.Error("Listen on an unknown feed: no error")
	}
	nop := func(string) {}
	for _, tc := range []struct {
		name string
		fns  map[store.Feed]func(string)
	}{
		{"a feed not listened on", map[store.Feed]func(string){store.FeedAgents: nop, store.FeedKeys: nop}},
		{"a feed listened on without a function", map[store.Feed]func(string){}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := s.Listen(t.Context(), store.FeedAgents)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(l.Close)
			if err := l.Watch(t.Context(), tc.fns, nil); err == nil {
				t.Error("Watch: no error")
			}
		})
	}
	t.Run("a second Watch", func(t *testing.T) {
		l, err := s.Listen(t.Context(), store.FeedAgents)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		cancel() // the first Watch returns at once
		if err := l.Watch(ctx, map[store.Feed]func(string){store.FeedAgents: nop}, nil); err != nil {
			t.Fatalf("first Watch = %v", err)
		}
		if err := l.Watch(t.Context(), map[store.Feed]func(string){store.FeedAgents: nop}, nil); err == nil {
			t.Error("second Watch: no error")
		}
	})
}
