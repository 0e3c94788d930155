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
		if !a.token.Matches(tok) {
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

// TokenCheck holds the admin token in force and tells it apart from a
// guess: the one check the admin API and the console's sign-in share.
type TokenCheck struct{ hash [sha256.Size]byte }

// NewTokenCheck returns the check of token.
func NewTokenCheck(token string) TokenCheck { return TokenCheck{hash: sha256.Sum256([]byte(token))} }

// Matches reports whether tok is the admin token. Both sides are hashed
// first, so it takes the same time whatever the length or content of the
// guess.
func (c TokenCheck) Matches(tok string) bool {
	got := sha256.Sum256([]byte(tok))
	return subtle.ConstantTimeCompare(got[:], c.hash[:]) == 1
}

// Binding is a value that changes when the admin token does, for what
// must end with it (the console's sessions key their MAC with it). It is
// a hash of a hash of the token: nothing learnt from it signs in.
func (c TokenCheck) Binding() [sha256.Size]byte {
	return sha256.Sum256(append([]byte("meshguard admin token binding\x00"), c.hash[:]...))
}
