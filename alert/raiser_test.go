package alert

import (
	"context"
	"errors"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/telemetry"
)

// newIdleDispatcher is a real dispatcher that is not run: what a Raiser
// raises stays on its intake, so once a Write or Decided call returns the
// intake holds exactly what that call raised (Raise is synchronous).
func newIdleDispatcher(t *testing.T) *Dispatcher {
	t.Helper()
	d, err := NewDispatcher(Config{Outbox: openStore(t, filepath.Join(t.TempDir(), "alerts.db"))})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func raised(d *Dispatcher) []Alert {
	var out []Alert
	for len(d.in) > 0 {
		out = append(out, <-d.in)
	}
	return out
}

// newAuditWriter is a real audit writer over SQLite that stores each
// record before Write returns; closed, it refuses every record.
func newAuditWriter(t *testing.T, closed bool) *audit.Writer {
	t.Helper()
	ctx := context.Background()
	w, err := audit.NewWriter(ctx, openStore(t, filepath.Join(t.TempDir(), "audit.db")), audit.WriterConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if closed {
		if err := w.Close(ctx); err != nil {
			t.Fatal(err)
		}
	} else {
		t.Cleanup(func() { _ = w.Close(ctx) })
	}
	return w
}

// TestRaiserRecorder: which recorded decisions raise which alert under
// ALERT_ON, and that a decision the audit trail did not take raises none
// (the engine refuses it, so it was never given).
func TestRaiserRecorder(t *testing.T) {
	triggers := func(s string) Triggers {
		tr, err := ParseTriggers(s)
		if err != nil {
			t.Fatal(err)
		}
		return tr
	}
	rec := func(decision string, status int) audit.Record {
		return audit.Record{ID: "dec_1", Timestamp: at, TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", AgentName: "emailer",
			Action: "write:email", Method: "POST", Path: "/outbox", Decision: decision, Status: status, Reason: "rule_deny"}
	}
	for _, tt := range []struct {
		name    string
		on      Triggers
		next    func(t *testing.T) Recorder // nil: the audit trail is off
		rec     audit.Record
		wantErr error
		want    Trigger // "": no alert
	}{
		{name: "a denial under deny", on: triggers("deny"), rec: rec("deny", 403), want: TriggerDeny,
			next: func(t *testing.T) Recorder { return newAuditWriter(t, false) }},
		{name: "a denial with the audit trail off", on: triggers("deny"), rec: rec("deny", 403), want: TriggerDeny},
		{name: "a rate limit under rate_limit", on: triggers("rate_limit"), rec: rec("deny", 429), want: TriggerRateLimit,
			next: func(t *testing.T) Recorder { return newAuditWriter(t, false) }},
		{name: "a rate limit under deny alone", on: triggers("deny"), rec: rec("deny", 429)},
		{name: "a denial under error alone", on: triggers("error"), rec: rec("deny", 403)},
		{name: "an allow under all", on: triggers("all"), rec: rec("allow", 200),
			next: func(t *testing.T) Recorder { return newAuditWriter(t, false) }},
		{name: "a denial the audit trail refused", on: triggers("all"), rec: rec("deny", 403), wantErr: audit.ErrClosed,
			next: func(t *testing.T) Recorder { return newAuditWriter(t, true) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := newIdleDispatcher(t)
			r, err := NewRaiser(RaiserConfig{Dispatcher: d, On: tt.on, Origin: Origin{Instance: "mg-1"}})
			if err != nil {
				t.Fatal(err)
			}
			var next Recorder
			if tt.next != nil {
				next = tt.next(t)
			}
			if err := r.Recorder(next).Write(context.Background(), tt.rec); !errors.Is(err, tt.wantErr) {
				t.Fatalf("Write: %v, want %v", err, tt.wantErr)
			}
			got := raised(d)
			if tt.want == "" {
				if len(got) != 0 {
					t.Fatalf("raised %+v", got)
				}
				return
			}
			if len(got) != 1 || got[0].Trigger != tt.want || got[0].Entry.TraceID != tt.rec.TraceID || got[0].Instance != "mg-1" {
				t.Fatalf("raised %+v, want one %s alert", got, tt.want)
			}
		})
	}
}

// TestRaiserObserver: with the error trigger, each check MeshGuard could
// not decide raises a critical error alert that names no cause (that is in
// the log), and every outcome still reaches the metrics; without it, the
// metrics are observed directly.
func TestRaiserObserver(t *testing.T) {
	clock := func() time.Time { return at }
	for _, tt := range []struct {
		name   string
		on     string
		effect string
		raises bool
	}{
		{"an undecided check under error", "error", "error", true},
		{"a denial under error", "error", "deny", false},
		{"an allow under all", "all", "allow", false},
		{"an undecided check under deny alone", "deny", "error", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			on, err := ParseTriggers(tt.on)
			if err != nil {
				t.Fatal(err)
			}
			d := newIdleDispatcher(t)
			r, err := NewRaiser(RaiserConfig{Dispatcher: d, On: on, Origin: Origin{Environment: "prod"}, Now: clock})
			if err != nil {
				t.Fatal(err)
			}
			m := telemetry.NewMetrics()
			obs := r.Observer(m)
			if !on[TriggerError] && obs != Observer(m) {
				t.Fatalf("without the error trigger the observer is %T, want the metrics themselves", obs)
			}
			obs.Decided("grpc", tt.effect, time.Millisecond)
			got := raised(d)
			switch {
			case !tt.raises && len(got) != 0:
				t.Fatalf("raised %+v", got)
			case tt.raises && (len(got) != 1 || got[0].Trigger != TriggerError || got[0].Severity != SeverityCritical ||
				!got[0].Timestamp.Equal(at) || got[0].Environment != "prod" || !strings.Contains(got[0].Title, "grpc")):
				t.Fatalf("raised %+v, want one error alert", got)
			}
			rec := httptest.NewRecorder()
			m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
			if want := `meshguard_policy_checks_total{decision="` + tt.effect + `",source="grpc"} 1`; !strings.Contains(rec.Body.String(), want) {
				t.Fatalf("the metrics miss %s", want)
			}
		})
	}
}

func TestNewRaiserNeedsADispatcher(t *testing.T) {
	if _, err := NewRaiser(RaiserConfig{}); err == nil {
		t.Fatal("a raiser without a dispatcher was made")
	}
}

// TestRaiserFailure: a failure outside a check (the audit store losing or
// refusing records) raises one critical error alert, at the raiser's clock
// and origin, carrying what failed and its cause — only when ALERT_ON has
// error; a nil Raiser (no provider) raises nothing and does not panic.
func TestRaiserFailure(t *testing.T) {
	for _, tt := range []struct {
		name   string
		on     string
		raises bool
	}{
		{"under error", "error", true},
		{"under all", "all", true},
		{"under deny alone", "deny", false},
		{"with ALERT_ON empty", "", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			on, err := ParseTriggers(tt.on)
			if err != nil {
				t.Fatal(err)
			}
			d := newIdleDispatcher(t)
			r, err := NewRaiser(RaiserConfig{Dispatcher: d, On: on, Origin: Origin{Instance: "mg-2"}, Now: func() time.Time { return at }})
			if err != nil {
				t.Fatal(err)
			}
			r.Failure("the audit store lost records it had committed", errors.New("chain main: seq 7 to 9 missing"))
			got := raised(d)
			switch {
			case !tt.raises && len(got) != 0:
				t.Fatalf("raised %+v", got)
			case tt.raises && (len(got) != 1 || got[0].Trigger != TriggerError || got[0].Severity != SeverityCritical ||
				!got[0].Timestamp.Equal(at) || got[0].Instance != "mg-2" ||
				got[0].Message != "the audit store lost records it had committed: chain main: seq 7 to 9 missing"):
				t.Fatalf("raised %+v, want one error alert", got)
			}
		})
	}
	var none *Raiser
	none.Failure("nothing to raise it to", errors.New("no provider"))
}
