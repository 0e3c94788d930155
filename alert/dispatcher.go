package alert

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/meshguard/meshguard/store"
)

// Outbox is where alerts wait for their providers (store.SQLite,
// store.Postgres): durable, so a restart or a receiver outage loses none.
type Outbox interface {
	EnqueueAlerts(ctx context.Context, alerts []store.OutboxAlert) error
	ClaimAlerts(ctx context.Context, provider string, now time.Time, lease time.Duration, limit int) ([]store.OutboxAlert, error)
	AlertDelivered(ctx context.Context, id int64) error
	AlertFailed(ctx context.Context, id int64, next time.Time, reason string) error
}

// Provider delivers alerts: Webhook, Slack, Email.
type Provider interface {
	Name() string
	Send(ctx context.Context, a *Alert) error
}

// Defaults of Config.
const (
	DefaultRateLimit = 10 // alerts a minute (ALERT_RATE_LIMIT)
	DefaultBackoff   = time.Second
	DefaultMaxDelay  = 10 * time.Minute
	DefaultPoll      = 500 * time.Millisecond
	// DefaultLease outlasts a claimed batch's worst case (claimBatch
	// deliveries at DefaultTimeout each), so no other replica takes an
	// alert while it is still being sent.
	DefaultLease = 5 * time.Minute
	claimBatch   = 10
	// maxAttempts gives an alert about a day of retries (most of them
	// MaxDelay apart); maxRejections is how often a receiver may refuse
	// it as bad (a 4xx other than 408 and 429) before it is given up.
	maxAttempts   = 150
	maxRejections = 3
	intake        = 1024 // alerts raised and not yet in the outbox
	maxPending    = 10_000
)

// Config configures a Dispatcher.
type Config struct {
	Outbox    Outbox
	Providers []Provider
	// RateLimit is how many alerts a minute go out one by one; beyond it
	// they are folded into one digest per minute (DefaultRateLimit if 0).
	RateLimit int
	// Backoff is the first retry's delay, doubled for each failure up to
	// MaxDelay, with jitter (DefaultBackoff, DefaultMaxDelay if 0).
	Backoff, MaxDelay time.Duration
	// Poll is how often each provider looks for due alerts besides being
	// woken by new ones (DefaultPoll if 0); Lease how long a claimed alert
	// is left to one delivery (DefaultLease if 0).
	Poll, Lease time.Duration
	// Result, if set, counts each delivery attempt: provider and "sent",
	// "failed", or "dropped" (the outbox could not take it).
	Result func(provider, result string)
	Origin Origin
	// Links, if set, signs an approval alert's links for each provider as
	// it sends (APPROVAL_LINK_BASE): a link is a credential to decide, so
	// it is made at delivery, never stored in the outbox.
	Links  LinkFunc
	Logger *slog.Logger
	Now    func() time.Time
}

// Dispatcher takes alerts off the decision path: Raise never blocks, the
// rate limit and digest run on their own goroutine, and each provider
// delivers from the outbox on its own, so a provider that keeps failing
// slows neither the checks nor the other providers.
type Dispatcher struct {
	cfg  Config
	in   chan Alert
	wake []chan struct{} // per provider

	mu      sync.Mutex
	overrun map[Trigger]int // raised while the intake was full: digested

	// tick, if set (by tests, before Run), drives admit instead of its
	// one-second ticker, so a test knows when a tick has been handled.
	tick <-chan time.Time
}

// NewDispatcher checks cfg.
func NewDispatcher(cfg Config) (*Dispatcher, error) {
	if cfg.Outbox == nil {
		return nil, errors.New("alert: NewDispatcher: Outbox is required")
	}
	for _, d := range []struct {
		v   *time.Duration
		def time.Duration
	}{{&cfg.Backoff, DefaultBackoff}, {&cfg.MaxDelay, DefaultMaxDelay}, {&cfg.Poll, DefaultPoll}, {&cfg.Lease, DefaultLease}} {
		if *d.v <= 0 {
			*d.v = d.def
		}
	}
	if cfg.RateLimit <= 0 {
		cfg.RateLimit = DefaultRateLimit
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Result == nil {
		cfg.Result = func(string, string) {}
	}
	d := &Dispatcher{cfg: cfg, in: make(chan Alert, intake), overrun: map[Trigger]int{}}
	for range cfg.Providers {
		d.wake = append(d.wake, make(chan struct{}, 1))
	}
	return d, nil
}

// Raise hands an alert over. It never blocks: when the intake is full the
// alert is counted into the next digest, never dropped unsaid.
func (d *Dispatcher) Raise(a Alert) {
	select {
	case d.in <- a:
	default:
		d.mu.Lock()
		d.overrun[a.Trigger]++
		d.mu.Unlock()
	}
}

// Announce stores an approval alert in the outbox at once, for every
// provider, outside the rate limit: a person must see each approval asked
// for, never a digest of them. Their number is bounded by the approvals
// themselves (approval.MaxPendingPerAgent per agent, and a retry of a
// pending request raises none), and the outbox by its cap. Unlike Raise it
// waits for the store, so an approval is announced even if MeshGuard
// stops right after raising it; the error says it could not be.
func (d *Dispatcher) Announce(ctx context.Context, a Alert) error {
	if err := d.enqueue(ctx, []Alert{a}); err != nil {
		d.dropped(1)
		return err
	}
	d.wakeAll()
	return nil
}

// Run delivers until ctx ends.
func (d *Dispatcher) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for i, p := range d.cfg.Providers {
		wg.Go(func() { d.deliver(ctx, p, d.wake[i]) })
	}
	d.admit(ctx)
	wg.Wait()
}

// admit applies the rate limit: up to RateLimit alerts a minute go to the
// outbox; the rest are counted, and once the minute is over one digest
// says how many of each there were. Alerts the outbox refused stay pending
// and are offered again every second.
func (d *Dispatcher) admit(ctx context.Context) {
	tick := d.tick
	if tick == nil {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		tick = t.C
	}
	var (
		windowStart  = d.cfg.Now()
		sent         int
		held         = map[Trigger]int{}
		heldCritical bool
		pending      []Alert
	)
	flush := func() {
		if len(pending) == 0 {
			return
		}
		if err := d.enqueue(ctx, pending); err != nil {
			d.cfg.Logger.Warn("alerts: the outbox refuses alerts; they wait in memory and are offered again", "waiting", len(pending), "error", err)
			if len(pending) > maxPending {
				d.cfg.Logger.Error("alerts: the outbox refuses alerts and too many wait; dropping the oldest", "dropped", len(pending)-maxPending, "error", err)
				d.dropped(len(pending) - maxPending)
				pending = append(pending[:0], pending[len(pending)-maxPending:]...)
			}
			return
		}
		pending = pending[:0]
		d.wakeAll()
	}
	// take applies the limit to a raised alert: pending on its own, or
	// counted into the window's digest.
	take := func(a Alert) bool {
		if sent < d.cfg.RateLimit {
			sent++
			pending = append(pending, a)
			return true
		}
		held[a.Trigger]++
		heldCritical = heldCritical || a.Severity == SeverityCritical
		return false
	}
	for {
		select {
		case <-ctx.Done():
			// What is still in the intake goes through the limit too,
			// and what the limit held back goes out as a digest after
			// the restart: neither lost with this process nor sent
			// past the limit by the next start.
			for taking := true; taking; {
				select {
				case a := <-d.in:
					take(a)
				default:
					taking = false
				}
			}
			d.foldOverrun(held)
			if digest, ok := d.digest(held, heldCritical, windowStart, d.cfg.Now()); ok {
				pending = append(pending, digest)
			}
			d.drain(pending)
			return
		case a := <-d.in:
			if take(a) {
				flush()
			}
		case <-tick:
			d.foldOverrun(held)
			if now := d.cfg.Now(); now.Sub(windowStart) >= time.Minute {
				if digest, ok := d.digest(held, heldCritical, windowStart, now); ok {
					pending = append(pending, digest)
				}
				windowStart, sent, heldCritical = now, 0, false
				clear(held)
			}
			flush()
		}
	}
}

// drain stores what admit had not stored when the dispatcher stops (a
// shutdown), so the next start delivers it.
func (d *Dispatcher) drain(pending []Alert) {
	if len(pending) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := d.enqueue(ctx, pending); err != nil {
		d.cfg.Logger.Error("alerts: raised alerts could not be stored at shutdown; they are lost", "alerts", len(pending), "error", err)
		d.dropped(len(pending))
	}
}

// foldOverrun adds the alerts raised while the intake was full to held.
// (Their severities are unknown: they count, but cannot raise the
// digest's.)
func (d *Dispatcher) foldOverrun(held map[Trigger]int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for t, n := range d.overrun {
		held[t] += n
	}
	clear(d.overrun)
}

// digest is the alert that stands for those held back in a window: as
// severe as the most severe of them.
func (d *Dispatcher) digest(held map[Trigger]int, critical bool, from, to time.Time) (Alert, bool) {
	total := 0
	for _, n := range held {
		total += n
	}
	if total == 0 {
		return Alert{}, false
	}
	a := newAlert("", to, d.cfg.Origin)
	a.Severity = SeverityWarning
	var parts []string
	for _, k := range []struct {
		t    Trigger
		noun string
	}{{TriggerDeny, "denials"}, {TriggerRateLimit, "rate limits hit"}, {TriggerError, "errors"}} {
		if n := held[k.t]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d more %s", n, k.noun))
			if a.Trigger == "" {
				a.Trigger = k.t // the digest goes out under its first kind
			}
		}
	}
	if critical || held[TriggerError] > 0 {
		a.Severity = SeverityCritical
	}
	a.Title = fmt.Sprintf("Digest: %d alerts held back by ALERT_RATE_LIMIT", total)
	a.Message = strings.Join(parts, ", ") + fmt.Sprintf(" in the last %s (beyond %d alerts a minute; see the audit trail for each).",
		to.Sub(from).Round(time.Second), d.cfg.RateLimit)
	return a, true
}

// enqueue stores alerts for every provider, in one transaction.
func (d *Dispatcher) enqueue(ctx context.Context, alerts []Alert) error {
	rows := make([]store.OutboxAlert, 0, len(alerts)*len(d.cfg.Providers))
	now := d.cfg.Now() // due by the clock the claims read
	for i := range alerts {
		body, err := json.Marshal(&alerts[i])
		if err != nil {
			return fmt.Errorf("alerts: encoding %s: %w", alerts[i].ID, err)
		}
		for _, p := range d.cfg.Providers {
			rows = append(rows, store.OutboxAlert{Provider: p.Name(), AlertID: alerts[i].ID, Payload: string(body), NextAt: now})
		}
	}
	if err := d.cfg.Outbox.EnqueueAlerts(ctx, rows); err != nil {
		return fmt.Errorf("alerts: %w", err)
	}
	return nil
}

func (d *Dispatcher) dropped(n int) {
	for range n {
		for _, p := range d.cfg.Providers {
			d.cfg.Result(p.Name(), "dropped")
		}
	}
}

func (d *Dispatcher) wakeAll() {
	for _, w := range d.wake {
		select {
		case w <- struct{}{}:
		default:
		}
	}
}

// deliver is one provider's loop: claim what is due, send it, and record
// the outcome; a failure is retried after the backoff.
func (d *Dispatcher) deliver(ctx context.Context, p Provider, wake <-chan struct{}) {
	t := time.NewTicker(d.cfg.Poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-wake:
		case <-t.C:
		}
		for ctx.Err() == nil {
			due, err := d.cfg.Outbox.ClaimAlerts(ctx, p.Name(), d.cfg.Now(), d.cfg.Lease, claimBatch)
			if err != nil {
				d.cfg.Logger.Warn("alerts: reading the outbox", "provider", p.Name(), "error", err)
				break
			}
			if len(due) == 0 {
				break
			}
			for i := range due {
				d.attempt(ctx, p, &due[i])
			}
		}
	}
}

func (d *Dispatcher) attempt(ctx context.Context, p Provider, row *store.OutboxAlert) {
	var a Alert
	if err := json.Unmarshal([]byte(row.Payload), &a); err != nil {
		// Written by enqueue; unreadable means corrupt: say so, drop it.
		d.cfg.Logger.Error("alerts: an outbox row is not an alert; removing it", "provider", p.Name(), "id", row.ID, "error", err)
		d.cfg.Result(p.Name(), "dropped")
		_ = d.cfg.Outbox.AlertDelivered(ctx, row.ID)
		return
	}
	if a.Approval != nil && d.cfg.Links != nil {
		if l, ok := d.cfg.Links(a.Approval.ID, p.Name(), a.Approval.ExpiresAt); ok {
			a.Approval.Links = &l
		}
	}
	sctx, cancel := context.WithTimeout(ctx, DefaultTimeout)
	err := p.Send(sctx, &a)
	cancel()
	// The outcome is recorded even when the dispatcher is stopping: an
	// unrecorded claim would keep the alert leased long after a restart.
	rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer rcancel()
	if err == nil {
		d.cfg.Result(p.Name(), "sent")
		if err := d.cfg.Outbox.AlertDelivered(rctx, row.ID); err != nil {
			d.cfg.Logger.Warn("alerts: delivered, but not removed from the outbox (it may be sent again)", "provider", p.Name(), "alert", a.ID, "error", err)
		}
		return
	}
	if ctx.Err() == nil && (row.Attempts+1 >= maxAttempts || errors.Is(err, ErrRejected) && row.Attempts+1 >= maxRejections) {
		// A receiver that refuses the alert as bad, or has failed for
		// about a day, will not take it: give it up, loudly, rather
		// than hold the outbox forever.
		d.cfg.Result(p.Name(), "dropped")
		d.cfg.Logger.Error("alerts: giving up an alert", "provider", p.Name(), "alert", a.ID, "attempts", row.Attempts+1, "error", err)
		if err := d.cfg.Outbox.AlertDelivered(rctx, row.ID); err != nil {
			d.cfg.Logger.Warn("alerts: removing a given-up alert", "provider", p.Name(), "error", err)
		}
		return
	}
	next := d.cfg.Now().Add(d.backoff(row.Attempts + 1))
	if ctx.Err() != nil {
		// Interrupted by a shutdown, not refused: due again at once.
		next = d.cfg.Now()
	} else {
		d.cfg.Result(p.Name(), "failed")
		d.cfg.Logger.Warn("alerts: delivery failed; retrying", "provider", p.Name(), "alert", a.ID, "attempt", row.Attempts+1, "next", next, "error", err)
	}
	if err := d.cfg.Outbox.AlertFailed(rctx, row.ID, next, err.Error()); err != nil {
		d.cfg.Logger.Warn("alerts: recording a failed delivery", "provider", p.Name(), "error", err)
	}
}

// backoff is the delay before attempt n+1: Backoff doubled per failure,
// capped at MaxDelay, drawn from its upper half so retries of many alerts
// do not arrive together.
func (d *Dispatcher) backoff(failures int) time.Duration {
	delay := d.cfg.MaxDelay
	if failures < 30 {
		delay = min(d.cfg.Backoff<<(failures-1), d.cfg.MaxDelay)
	}
	return delay/2 + time.Duration(rand.Int64N(int64(delay/2)+1))
}
