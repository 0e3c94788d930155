package gateway_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/meshguard/meshguard/engine/enginetest"
	"github.com/meshguard/meshguard/gateway"
	"github.com/meshguard/meshguard/trust"
)

// logRecords is a slog handler that hands every record to a channel, so a
// test waits for the gateway's log line instead of for time.
type logRecords chan slog.Record

func (c logRecords) Enabled(context.Context, slog.Level) bool { return true }
func (c logRecords) Handle(_ context.Context, r slog.Record) error {
	c <- r.Clone()
	return nil
}
func (c logRecords) WithAttrs([]slog.Attr) slog.Handler { return c }
func (c logRecords) WithGroup(string) slog.Handler      { return c }

// TestACallerGivingUpIsNoUpstreamFailure: the gateway's log receives
// upstream failures (gateway.Config.Logger) as warnings; a caller that
// gives up while the upstream thinks is no upstream failure, and is logged
// at debug level only, so callers with short timeouts do not flood the
// log with warnings.
func TestACallerGivingUpIsNoUpstreamFailure(t *testing.T) {
	t.Parallel()
	f := enginetest.New(t, testPolicies, enginetest.Options{})
	_, tok := f.Agent(t, "reader", trust.Verified, []string{"reader"})
	arrived := make(chan struct{}, 1)
	slow := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-r.Context().Done() // the gateway cancels it when the caller goes
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + l.Addr().String()
	_ = l.Close()

	tests := []struct {
		name    string
		target  string
		cancel  bool
		level   slog.Level
		message string
	}{
		{"the caller gives up", slow.URL, true, slog.LevelDebug, "gateway: caller cancelled before the upstream answered"},
		{"the upstream refuses", closed, false, slog.LevelWarn, "gateway: upstream request failed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			logs := make(logRecords, 256)
			gw := startGateway(t, gateway.Config{Checker: f.Engine, Target: mustURL(t, tc.target), Logger: slog.New(logs)})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, "GET", gw+"/proxy/docs", nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer "+tok)
			done := make(chan error, 1)
			go func() {
				res, err := newClient(t).Do(req)
				if err == nil {
					res.Body.Close()
				}
				done <- err
			}()
			if tc.cancel {
				select {
				case <-arrived:
				case err := <-done:
					t.Fatalf("the request ended before it reached the upstream: %v", err)
				}
				cancel()
				if err := <-done; !errors.Is(err, context.Canceled) {
					t.Fatalf("the caller's request ended with %v, want it cancelled", err)
				}
			} else if err := <-done; err != nil {
				t.Fatal(err)
			}
			deadline := time.After(30 * time.Second)
			for {
				select {
				case r := <-logs:
					if r.Message == "gateway: caller cancelled before the upstream answered" || r.Message == "gateway: upstream request failed" {
						if r.Level != tc.level || r.Message != tc.message {
							t.Fatalf("logged %s %q, want %s %q", r.Level, r.Message, tc.level, tc.message)
						}
						return
					}
				case <-deadline:
					t.Fatal("the gateway logged nothing about the failed upstream request")
				}
			}
		})
	}
}
