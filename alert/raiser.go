package alert

import (
	"context"
	"errors"
	"time"

	"github.com/meshguard/meshguard/audit"
)

// Recorder keeps decision records: the engine's Recorder (audit.Writer),
// which a Raiser wraps.
type Recorder interface {
	Write(ctx context.Context, r audit.Record) error
}

// Observer is told of every check's outcome: the engine's Observer
// (telemetry.Metrics), which a Raiser wraps.
type Observer interface {
	Decided(source, effect string, took time.Duration)
}

// RaiserConfig configures a Raiser.
type RaiserConfig struct {
	// Dispatcher takes the alerts raised (required).
	Dispatcher *Dispatcher
	// On is ALERT_ON: the triggers that raise alerts.
	On     Triggers
	Origin Origin
	// Now is the clock of error alerts (time.Now if nil); decision alerts
	// carry their record's time.
	Now func() time.Time
}

// Raiser decides which of MeshGuard's decisions and failures raise an
// alert under ALERT_ON, and raises them. It sits on the decision path as
// a wrapper of the engine's Recorder and Observer; raising never blocks
// (Dispatcher.Raise), so a check waits for nothing more than its record.
type Raiser struct {
	d      *Dispatcher
	on     Triggers
	origin Origin
	now    func() time.Time
}

// NewRaiser checks cfg.
func NewRaiser(cfg RaiserConfig) (*Raiser, error) {
	if cfg.Dispatcher == nil {
		return nil, errors.New("alert: NewRaiser: Dispatcher is required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Raiser{d: cfg.Dispatcher, on: cfg.On, origin: cfg.Origin, now: cfg.Now}, nil
}

// Recorder returns next (nil when the audit trail is off) wrapped: each
// decision is recorded first, then raises the alert it calls for (deny,
// rate_limit). A decision next fails to record raises nothing: the engine
// refuses it, so it was never given.
func (r *Raiser) Recorder(next Recorder) Recorder {
	return recording{next: next, r: r}
}

// Observer returns next wrapped so that each check MeshGuard could not
// decide (effect "error": the store down, the audit trail refusing
// writes) raises an error alert; next itself when ALERT_ON has no error.
func (r *Raiser) Observer(next Observer) Observer {
	if !r.on[TriggerError] {
		return next
	}
	return observing{next: next, r: r}
}

// Failure raises a critical error alert — when ALERT_ON has error — for a
// failure of MeshGuard's own outside any one check: the audit store losing
// or refusing records. what says what failed; cause is the detail, and must
// hold neither secrets nor a record's content. A nil Raiser (no provider
// configured) raises nothing.
func (r *Raiser) Failure(what string, cause error) {
	if r == nil || !r.on[TriggerError] {
		return
	}
	r.d.Raise(ForError(what, cause, r.now(), r.origin))
}

type recording struct {
	next Recorder
	r    *Raiser
}

func (w recording) Write(ctx context.Context, rec audit.Record) error {
	if w.next != nil {
		if err := w.next.Write(ctx, rec); err != nil {
			return err
		}
	}
	if a, ok := ForDecision(&rec, w.r.on, w.r.origin); ok {
		w.r.d.Raise(a)
	}
	return nil
}

// errUndecided is what an error alert for an undecided check says: the
// cause is in MeshGuard's log, never in an alert (it may name internals).
var errUndecided = errors.New("MeshGuard could not decide a request and refused it (fail closed); its log says why")

type observing struct {
	next Observer
	r    *Raiser
}

func (o observing) Decided(source, effect string, took time.Duration) {
	if o.next != nil {
		o.next.Decided(source, effect, took)
	}
	if effect == "error" {
		o.r.Failure("a "+source+" check failed", errUndecided)
	}
}
