package admin

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"

	"github.com/meshguard/meshguard/api"
	"github.com/meshguard/meshguard/internal/edge"
	"github.com/meshguard/meshguard/internal/httpjson"
)

// requireAdmin lets a request through only with the admin token in
// X-Admin-Token. The comparison hashes both sides first, so it takes the
// same time whatever the length or content of the guess. Authorization is
// never read as admin credentials: a request that carries a bearer token
// and no admin token is an agent knocking on the wrong door, and is told so
// (403) rather than asked for credentials (401).
func (a *API) requireAdmin(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := r.Header.Get(api.HeaderAdminToken)
		if tok == "" {
			if bearer(r) != "" {
				httpjson.WriteJSON(w, http.StatusForbidden, api.ErrorBody{Error: "forbidden", Reason: api.ReasonAdminTokenRequired,
					Message: "agent tokens cannot use the admin API; send the admin token in X-Admin-Token"})
				return
			}
			httpjson.WriteError(w, http.StatusUnauthorized, "unauthorized", "missing admin token: send it in X-Admin-Token")
			return
		}
		got := sha256.Sum256([]byte(tok))
		if subtle.ConstantTimeCompare(got[:], a.adminHash[:]) != 1 {
			a.log.Warn("admin: wrong admin token", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr)
			httpjson.WriteError(w, http.StatusUnauthorized, "unauthorized", "invalid admin token")
			return
		}
		h(w, r)
	})
}

// bearer returns the token of an "Authorization: Bearer …" header, "" if
// there is none.
func bearer(r *http.Request) string { return edge.Bearer(r.Header.Get("Authorization")) }
