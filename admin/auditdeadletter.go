package admin

import (
	"net/http"
	"strconv"

	"github.com/meshguard/meshguard/api"
	"github.com/meshguard/meshguard/internal/httpjson"
	"github.com/meshguard/meshguard/store"
)

// auditDeadLetters is GET /admin/audit/deadletter?limit=&cursor=: the
// records the store refused as data and the writers kept outside the hash
// chains, newest first.
func (a *API) auditDeadLetters(w http.ResponseWriter, r *http.Request) {
	p, msg := queryParams(r, "limit", "cursor")
	if msg != "" {
		httpjson.BadRequest(w, "%s", msg)
		return
	}
	limit := store.DefaultAuditLimit
	if v := p["limit"]; v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > store.MaxDeadLetterPage {
			httpjson.BadRequest(w, "limit: %q: expected 1 to %d", v, store.MaxDeadLetterPage)
			return
		}
		limit = n
	}
	var before int64
	if v := p["cursor"]; v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			httpjson.BadRequest(w, "cursor: %q is not one MeshGuard gave", v)
			return
		}
		before = n
	}
	page, err := a.cfg.Audit.AuditDeadLetters(r.Context(), limit, before, false)
	if err != nil {
		a.storeError(w, r, "listing the audit dead letters", err)
		return
	}
	httpjson.WriteJSON(w, http.StatusOK, api.AuditDeadLetterPage{DeadLetters: page.DeadLetters, NextCursor: page.Next})
}
