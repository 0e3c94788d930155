package checkapi_test

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/meshguard/meshguard/approvalapi"
	"github.com/meshguard/meshguard/checkapi"
	"github.com/meshguard/meshguard/engine/enginetest"
	"github.com/meshguard/meshguard/internal/httpjson"
	"github.com/meshguard/meshguard/trust"
)

// BenchmarkCheck is one allowed POST /v1/check through the handler (no
// network), without and with the approvals' Prefer: wait support: what
// reading Prefer costs every check that does not wait.
func BenchmarkCheck(b *testing.B) {
	f := enginetest.New(b, policies, enginetest.Options{})
	_, tok := f.Agent(b, "emailer", trust.Verified, []string{"emailer"})
	svc, err := approvalapi.New(b.Context(), approvalapi.Config{Store: f.Store})
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name      string
		approvals bool
	}{{"without approvals", false}, {"with approvals", true}} {
		b.Run(bc.name, func(b *testing.B) {
			a, err := checkapi.New(f.Engine, slog.New(slog.DiscardHandler))
			if err != nil {
				b.Fatal(err)
			}
			if bc.approvals {
				a.WithApprovals(svc)
			}
			r := httpjson.NewRouter(nil)
			a.Register(r)
			b.ReportAllocs()
			for b.Loop() {
				req := httptest.NewRequest(http.MethodPost, "/v1/check", strings.NewReader(`{"action":"read:contacts","resource":"/contacts"}`))
				req.Header.Set("Authorization", "Bearer "+tok)
				req.Header.Set("Content-Type", "application/json")
				w := httptest.NewRecorder()
				r.ServeHTTP(w, req)
				if w.Code != http.StatusOK {
					b.Fatalf("%d %s", w.Code, w.Body)
				}
			}
		})
	}
}
