package admin

import (
	"context"
	"net/http"

	"github.com/meshguard/meshguard/api"
	"github.com/meshguard/meshguard/internal/httpjson"
)

// Alerts is alerting as the admin API shows it (the server's settings and
// providers).
type Alerts interface {
	Status(ctx context.Context) (api.AlertsStatus, error)
	// Test sends a test alert to every provider, directly, and says how
	// each went.
	Test(ctx context.Context) []api.AlertTestResult
}

// alertsStatus is GET /admin/alerts.
func (a *API) alertsStatus(w http.ResponseWriter, r *http.Request) {
	st, err := a.cfg.Alerts.Status(r.Context())
	if err != nil {
		a.log.Error("admin: reading the alert outbox", "error", err)
		httpjson.WriteError(w, http.StatusServiceUnavailable, "unavailable", "the alert outbox cannot be read; try again")
		return
	}
	httpjson.WriteJSON(w, http.StatusOK, st)
}

// alertsTest is POST /admin/alerts/test: 200 with each provider's result,
// whether it delivered or not (the CLI exits 1 when one did not).
func (a *API) alertsTest(w http.ResponseWriter, r *http.Request) {
	res := a.cfg.Alerts.Test(r.Context())
	if res == nil {
		res = []api.AlertTestResult{}
	}
	httpjson.WriteJSON(w, http.StatusOK, map[string]any{"results": res})
}

// Alerts is alerting as the admin API shows it (nil when not configured):
// what the console's alerts page reads, so both show the same.
func (a *API) Alerts() Alerts { return a.cfg.Alerts }
