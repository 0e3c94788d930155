package alert

import (
	"context"
	"encoding/json"
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
// ends (or stop is called).
type rig struct {
	d       *Dispatcher
	clock   *clock
	results *results
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
	r := &rig{clock: c, results: &results{n: map[string]int{}}}
	d, err := NewDispatcher(Config{Outbox: outbox, Providers: providers, RateLimit: limit, Poll: 20 * time.Millisecond,
		Backoff: time.Second, Result: r.results.add, Now: c.Now, Origin: Origin{Instance: "mg-test"}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	r.d, r.stop = d, sync.OnceFunc(func() { cancel(); <-done })
	t.Cleanup(r.stop)
	return r
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
// dropped unsaid.
func TestRateLimitAndDigest(t *testing.T) {
	hook := newReceiver(t, 204)
	c := &clock{now: at}
	r := newRig(t, openStore(t, filepath.Join(t.TempDir(), "mg.db")), c, []Provider{&Webhook{URL: hook.srv.URL}}, 3)
	for i := range 10 {
		r.d.Raise(denial("agent-" + string(rune('a'+i))))
	}
	eventually(t, "three alerts", func() bool { return hook.count() == 3 })
	time.Sleep(1200 * time.Millisecond) // a tick inside the minute: no digest yet
	if hook.count() != 3 {
		t.Fatalf("%d alerts before the minute ended", hook.count())
	}
	c.Add(time.Minute)
	eventually(t, "the digest", func() bool { return hook.count() == 4 })
	d := hook.alert(t, 3)
	if !strings.Contains(d.Message, "7 more denials") || !strings.HasPrefix(d.Title, "Digest") || d.Trigger != TriggerDeny {
		t.Fatalf("digest %+v", d)
	}
	if r.results.get("webhook/sent") != 4 {
		t.Fatalf("sent %d", r.results.get("webhook/sent"))
	}
}

// TestRetriesUntilTheReceiverIsBack: a receiver that answers 503 is tried
// again after the backoff, until it takes the alert; another provider,
// whose receiver hangs, does not hold it up.
func TestRetriesUntilTheReceiverIsBack(t *testing.T) {
	var fails atomic.Int32
	fails.Store(2)
	flaky := newReceiver(t, 204)
	flaky.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if fails.Add(-1) >= 0 {
			w.WriteHeader(503)
			return
		}
		flaky.mu.Lock()
		flaky.bodies = append(flaky.bodies, []byte("{}"))
		flaky.mu.Unlock()
		w.WriteHeader(204)
	})
	hang := make(chan struct{})
	stuck := newReceiver(t, 200)
	stuck.srv.Config.Handler = http.HandlerFunc(func(http.ResponseWriter, *http.Request) { <-hang })
	t.Cleanup(func() { close(hang) })
	c := &clock{now: at}
	r := newRig(t, openStore(t, filepath.Join(t.TempDir(), "mg.db")), c,
		[]Provider{&Webhook{URL: flaky.srv.URL}, &Slack{URL: stuck.srv.URL}}, 10)
	r.d.Raise(denial("emailer"))
	eventually(t, "the first failure", func() bool { return r.results.get("webhook/failed") == 1 })
	c.Add(time.Second) // the first backoff: between 0.5 and 1 s
	eventually(t, "the second failure", func() bool { return r.results.get("webhook/failed") == 2 })
	if flaky.count() != 0 {
		t.Fatal("delivered before the receiver was back")
	}
	c.Add(2 * time.Second) // the second: between 1 and 2 s
	eventually(t, "the delivery", func() bool { return flaky.count() == 1 })
	if r.results.get("slack/sent") != 0 {
		t.Fatal("the hanging receiver took the alert")
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
	time.Sleep(100 * time.Millisecond) // let the intake take the rest
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
	if n, err := s.CountOutbox(context.Background()); err != nil || n["webhook"] != 0 {
		t.Fatalf("outbox %v %v", n, err)
	}
}
