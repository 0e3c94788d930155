package alert

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/store"
)

// clock is a test clock the dispatcher reads; tests move it.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// results counts Result calls.
type results struct {
	mu sync.Mutex
	n  map[string]int
}

func (r *results) add(provider, result string) {
	r.mu.Lock()
	r.n[provider+"/"+result]++
	r.mu.Unlock()
}

func (r *results) get(key string) int { r.mu.Lock(); defer r.mu.Unlock(); return r.n[key] }

// rig is a dispatcher over a real SQLite outbox, running until the test
// ends (or stop is called). Its rate-limit ticks come from the test
// (tick), never from the wall clock.
type rig struct {
	d       *Dispatcher
	clock   *clock
	results *results
	ticks   chan time.Time
	stop    func()
}

func openStore(t *testing.T, path string) *store.SQLite {
	t.Helper()
	s, err := store.OpenSQLite(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func newRig(t *testing.T, outbox Outbox, c *clock, providers []Provider, limit int) *rig {
	t.Helper()
	r := &rig{clock: c, results: &results{n: map[string]int{}}, ticks: make(chan time.Time)}
	d, err := NewDispatcher(Config{Outbox: outbox, Providers: providers, RateLimit: limit, Poll: 20 * time.Millisecond,
		Backoff: time.Second, Result: r.results.add, Now: c.Now, Origin: Origin{Instance: "mg-test"}})
	if err != nil {
		t.Fatal(err)
	}
	d.tick = r.ticks
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	r.d, r.stop = d, sync.OnceFunc(func() { cancel(); <-done })
	t.Cleanup(r.stop)
	return r
}

// tick makes the rate limiter tick once and returns when it has handled
// the tick: the ticks are unbuffered and the limiter takes one at a time,
// so its taking a second one means it is done with the first.
func (r *rig) tick(t *testing.T) {
	t.Helper()
	for range 2 {
		select {
		case r.ticks <- time.Time{}:
		case <-time.After(10 * time.Second):
			t.Fatal("the rate limiter does not take its tick")
		}
	}
}

// intakeTaken waits until the rate limiter has taken every raised alert
// off the intake (and so counted it, once its current step is done: it
// does one thing at a time).
func (r *rig) intakeTaken(t *testing.T) {
	t.Helper()
	eventually(t, "the intake taken", func() bool { return len(r.d.in) == 0 })
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func denial(name string) Alert {
	all, _ := ParseTriggers("all")
	a, _ := ForDecision(&audit.Record{Timestamp: at, AgentName: name, Action: "write:email", Decision: "deny", Status: 403, Reason: "rule_deny"}, all, Origin{})
	return a
}

func (r *receiver) count() int { r.mu.Lock(); defer r.mu.Unlock(); return len(r.bodies) }

func (r *receiver) alert(t *testing.T, i int) Alert {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	var a Alert
	if err := json.Unmarshal(r.bodies[i], &a); err != nil {
		t.Fatal(err)
	}
	return a
}

// TestRateLimitAndDigest: beyond ALERT_RATE_LIMIT a minute, alerts are
// held and, once the minute is over, one digest says how many — none is
// dropped unsaid, and no digest goes out while the minute lasts.
func TestRateLimitAndDigest(t *testing.T) {
	hook := newReceiver(t, 204)
	c := &clock{now: at}
	s := openStore(t, filepath.Join(t.TempDir(), "mg.db"))
	r := newRig(t, s, c, []Provider{&Webhook{URL: hook.srv.URL}}, 3)
	for i := range 10 {
		r.d.Raise(denial("agent-" + string(rune('a'+i))))
	}
	r.intakeTaken(t)
	eventually(t, "the admitted alerts sent and out of the outbox", func() bool {
		n, err := s.CountOutbox(context.Background())
		return err == nil && n["webhook"] == 0 && r.results.get("webhook/sent") >= 3
	})
	if n := r.results.get("webhook/sent"); n != 3 {
		t.Fatalf("%d alerts sent one by one; want the limit, 3", n)
	}
	// A tick inside the minute: a digest it made would now be in the
	// outbox or, if already sent, at the receiver.
	r.tick(t)
	if n, err := s.CountOutbox(context.Background()); err != nil || n["webhook"] != 0 {
		t.Fatalf("after a tick inside the minute the outbox holds %v (%v); want nothing", n, err)
	}
	if hook.count() != 3 {
		t.Fatalf("%d alerts before the minute ended; want 3", hook.count())
	}
	c.Add(time.Minute)
	r.tick(t)
	eventually(t, "the digest sent", func() bool { return r.results.get("webhook/sent") == 4 })
	if hook.count() != 4 {
		t.Fatalf("the receiver got %d alerts; want the 3 and a digest", hook.count())
	}
	d := hook.alert(t, 3)
	if !strings.Contains(d.Message, "7 more denials") || !strings.HasPrefix(d.Title, "Digest") || d.Trigger != TriggerDeny {
		t.Fatalf("digest %+v", d)
	}
}

// TestRetriesUntilTheReceiverIsBack: a receiver that answers 503 is tried
// again after the backoff, until it takes the alert; another provider,
// whose receiver hangs, does not hold it up: the alert is delivered while
// the hanging receiver still holds its own delivery.
func TestRetriesUntilTheReceiverIsBack(t *testing.T) {
	var fails atomic.Int32
	fails.Store(2)
	flaky := newReceiver(t, 204)
	flaky.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if fails.Add(-1) >= 0 {
			w.WriteHeader(503)
			return
		}
		b, _ := io.ReadAll(req.Body)
		flaky.mu.Lock()
		flaky.bodies = append(flaky.bodies, b)
		flaky.mu.Unlock()
		w.WriteHeader(204)
	})
	hit := make(chan struct{}, 1)
	hang := make(chan struct{})
	var released atomic.Bool // the hanging call ended
	stuck := newReceiver(t, 200)
	stuck.srv.Config.Handler = http.HandlerFunc(func(_ http.ResponseWriter, req *http.Request) {
		// Read to the end, so the server notices the client giving up
		// (it watches the connection only once the body is read).
		_, _ = io.Copy(io.Discard, req.Body)
		select {
		case hit <- struct{}{}:
		default:
		}
		select {
		case <-hang:
		case <-req.Context().Done():
		}
		released.Store(true)
	})
	t.Cleanup(func() { close(hang) })
	c := &clock{now: at}
	// The hanging provider first: a dispatcher that delivered one
	// provider after another would be stuck behind it.
	r := newRig(t, openStore(t, filepath.Join(t.TempDir(), "mg.db")), c,
		[]Provider{&Slack{URL: stuck.srv.URL}, &Webhook{URL: flaky.srv.URL}}, 10)
	r.d.Raise(denial("emailer"))
	select {
	case <-hit:
	case <-time.After(10 * time.Second):
		t.Fatal("the hanging receiver was never called")
	}
	// Each step of the other provider must come while the hanging call
	// still hangs (it would end, at DefaultTimeout, if it were waited
	// for); the deadline outlasts that timeout, so waiting would show.
	whileHanging := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(3 * DefaultTimeout)
		for !cond() {
			if released.Load() {
				t.Fatalf("the hanging receiver's call ended before %s: the other provider waited for it", what)
			}
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	whileHanging("the first failure", func() bool { return r.results.get("webhook/failed") == 1 })
	c.Add(time.Second) // the first backoff: between 0.5 and 1 s
	whileHanging("the second failure", func() bool { return r.results.get("webhook/failed") == 2 })
	if flaky.count() != 0 {
		t.Fatal("delivered before the receiver was back")
	}
	c.Add(2 * time.Second) // the second: between 1 and 2 s
	whileHanging("the delivery", func() bool { return r.results.get("webhook/sent") == 1 })
	if released.Load() {
		t.Fatal("the hanging receiver's call ended before the other provider delivered: it was waited for")
	}
	if got := flaky.alert(t, 0); got.Entry.AgentName != "emailer" || flaky.count() != 1 {
		t.Fatalf("the receiver that came back got %d alerts, the first %+v", flaky.count(), got)
	}
	if n := r.results.get("slack/sent") + r.results.get("slack/failed"); n != 0 {
		t.Fatalf("the hanging delivery has an outcome (%d) while it still hangs", n)
	}
}

// TestOutboxSurvivesARestart: alerts raised while the receiver is down
// are in the outbox; a new dispatcher over the reopened store, with the
// receiver up, delivers them.
func TestOutboxSurvivesARestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mg.db")
	down := newReceiver(t, 503)
	c := &clock{now: at}
	s1, err := store.OpenSQLite(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	r1 := newRig(t, s1, c, []Provider{&Webhook{URL: down.srv.URL}}, 10)
	r1.d.Raise(denial("one"))
	r1.d.Raise(denial("two"))
	eventually(t, "two failures", func() bool { return r1.results.get("webhook/failed") >= 2 })
	r1.stop()
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}

	up := newReceiver(t, 204)
	s2 := openStore(t, path)
	if n, err := s2.CountOutbox(context.Background()); err != nil || n["webhook"] != 2 {
		t.Fatalf("after the restart the outbox holds %v (%v)", n, err)
	}
	c.Add(time.Hour) // past every backoff and lease
	newRig(t, s2, c, []Provider{&Webhook{URL: up.srv.URL}}, 10)
	eventually(t, "both alerts", func() bool { return up.count() == 2 })
	names := map[string]bool{up.alert(t, 0).Entry.AgentName: true, up.alert(t, 1).Entry.AgentName: true}
	if !names["one"] || !names["two"] {
		t.Fatalf("delivered %v", names)
	}
	eventually(t, "an empty outbox", func() bool { n, _ := s2.CountOutbox(context.Background()); return n["webhook"] == 0 })
}

// TestShutdownKeepsWhatTheLimitHeld: alerts the rate limit held back when
// the dispatcher stops go into the outbox as a digest, not lost with the
// process; the digest is as severe as the most severe it stands for.
func TestShutdownKeepsWhatTheLimitHeld(t *testing.T) {
	down := newReceiver(t, 503)
	c := &clock{now: at}
	s := openStore(t, filepath.Join(t.TempDir(), "mg.db"))
	r := newRig(t, s, c, []Provider{&Webhook{URL: down.srv.URL}}, 2)
	for range 9 {
		r.d.Raise(denial("agent"))
	}
	critical := denial("root")
	critical.Severity = SeverityCritical
	r.d.Raise(critical)
	eventually(t, "both admitted alerts tried", func() bool { return r.results.get("webhook/failed") >= 2 })
	// Every alert through the rate limit before the stop: one still in
	// the intake then would be stored as itself, not in the digest.
	r.intakeTaken(t)
	r.stop()
	rows, err := s.ClaimAlerts(context.Background(), "webhook", c.Now().Add(time.Hour), time.Minute, 10)
	if err != nil || len(rows) != 3 {
		t.Fatalf("the outbox after the stop: %d rows (%v); want the two admitted and a digest", len(rows), err)
	}
	var digest Alert
	if err := json.Unmarshal([]byte(rows[2].Payload), &digest); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(digest.Message, "8 more denials") || digest.Severity != SeverityCritical {
		t.Fatalf("digest %+v", digest)
	}
}

// TestStopKeepsTheLimitOnTheIntake: alerts raised but not yet taken off
// the intake when the dispatcher stops go through the rate limit like the
// others: stored one by one up to the limit, the rest in the digest — not
// each stored for the next start to send, past the limit.
func TestStopKeepsTheLimitOnTheIntake(t *testing.T) {
	c := &clock{now: at}
	s := openStore(t, filepath.Join(t.TempDir(), "mg.db"))
	d, err := NewDispatcher(Config{Outbox: s, Providers: []Provider{&Webhook{URL: "http://127.0.0.1:1"}}, RateLimit: 2, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	for range 50 {
		d.Raise(denial("agent"))
	}
	// Stopped before it starts: everything raised is still in the intake.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	d.Run(ctx)
	rows, err := s.ClaimAlerts(context.Background(), "webhook", c.Now().Add(time.Hour), time.Minute, 100)
	if err != nil || len(rows) != 3 {
		t.Fatalf("the outbox after the stop: %d rows (%v); want the limit's 2 and a digest", len(rows), err)
	}
	var digest Alert
	if err := json.Unmarshal([]byte(rows[2].Payload), &digest); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(digest.Message, "48 more denials") {
		t.Fatalf("digest %+v", digest)
	}
}

// TestGivesUpARefusedAlert: a receiver that refuses an alert as bad (a
// 400) three times gets it no more; it is counted as dropped and leaves the
// outbox, rather than being retried forever in front of the others.
func TestGivesUpARefusedAlert(t *testing.T) {
	refuses := newReceiver(t, 400)
	c := &clock{now: at}
	s := openStore(t, filepath.Join(t.TempDir(), "mg.db"))
	r := newRig(t, s, c, []Provider{&Webhook{URL: refuses.srv.URL}}, 10)
	r.d.Raise(denial("emailer"))
	for i := 1; i <= 2; i++ {
		eventually(t, "a refusal", func() bool { return r.results.get("webhook/failed") == i })
		c.Add(time.Minute)
	}
	eventually(t, "the alert given up", func() bool { return r.results.get("webhook/dropped") == 1 })
	// Counted as dropped, then removed: wait for the removal.
	eventually(t, "an empty outbox", func() bool { n, err := s.CountOutbox(context.Background()); return err == nil && n["webhook"] == 0 })
	if n := r.results.get("webhook/failed"); n != 2 {
		t.Fatalf("%d failures counted before the alert was given up; want 2", n)
	}
}
