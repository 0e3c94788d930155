package admin

import (
	"net/http"
	"regexp"
	"slices"
	"strconv"

	"github.com/meshguard/meshguard/api"
	"github.com/meshguard/meshguard/identity"
	"github.com/meshguard/meshguard/internal/httpjson"
)

// health answers while the process serves: liveness, not readiness.
func (a *API) health(w http.ResponseWriter, _ *http.Request) {
	httpjson.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// ready reports whether MeshGuard can decide requests as configured: the
// Ready hook (the store, …) and the policy loader's last reload. A failed
// reload leaves the last good set in force, but the operator must know.
func (a *API) ready(w http.ResponseWriter, r *http.Request) {
	out := api.ReadyStatus{Status: "ready", PolicyRevision: a.cfg.Policies.Current().Revision()}
	if a.cfg.Ready != nil {
		if err := a.cfg.Ready(r.Context()); err != nil {
			if multi, ok := err.(interface{ Unwrap() []error }); ok {
				for _, e := range multi.Unwrap() {
					out.Errors = append(out.Errors, e.Error())
				}
			} else {
				out.Errors = append(out.Errors, err.Error())
			}
		}
	}
	if err := a.cfg.Policies.Err(); err != nil {
		out.Errors = append(out.Errors, policyLoadSummary(err)...)
	}
	if _, _, ok := a.cfg.Keys.Keyring().Current(); !ok {
		out.Errors = append(out.Errors, "keys: no current signing key")
	}
	if len(out.Errors) > 0 {
		out.Status = "not_ready"
		httpjson.WriteJSON(w, http.StatusServiceUnavailable, out)
		return
	}
	httpjson.WriteJSON(w, http.StatusOK, out)
}

// policyLoadSummary says where the last policy load failed, one line per
// file and line, without the messages: /ready is public, and a message may
// quote the file (a value, an unknown key, or a file that is not a policy
// at all). GET /admin/policies has the messages.
func policyLoadSummary(err error) []string {
	var out []string
	for _, e := range locatedErrors(err) {
		where := e.File
		switch {
		case where == "":
			// Not located: an I/O error (the directory cannot be read),
			// whose text may name paths; say only that it failed.
			where = "the policies"
		case e.Line > 0:
			where += ":" + strconv.Itoa(e.Line)
		}
		line := "policies: " + where + ": does not load (GET /admin/policies says why)"
		if slices.Contains(out, line) {
			continue
		}
		if len(out) == maxReadyPolicyErrors {
			return append(out, "policies: more errors (GET /admin/policies lists them all)")
		}
		out = append(out, line)
	}
	return out
}

// maxReadyPolicyErrors bounds the lines /ready gives a failed policy load.
const maxReadyPolicyErrors = 10

// jwks serves the public keys that verify now, cacheable for a minute: a
// rotation reaches verifiers within that, and the old key stays listed far
// longer than that.
func (a *API) jwks(w http.ResponseWriter, r *http.Request) {
	doc, err := a.cfg.Keys.JWKS()
	if err != nil {
		a.internalError(w, r, "building the JWKS", err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=60")
	_, _ = w.Write(doc)
}

// hostPattern accepts a Host header worth putting into jwks_uri.
var hostPattern = regexp.MustCompile(`^[A-Za-z0-9.-]{1,253}(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]{2,45}\](:[0-9]{1,5})?$`)

// openIDConfiguration serves the OIDC discovery document. Without a
// configured BaseURL its jwks_uri follows the request's Host (and is not
// cached by shared caches).
func (a *API) openIDConfiguration(w http.ResponseWriter, r *http.Request) {
	d := a.discovery
	cache := "public, max-age=300"
	if d == nil {
		if !hostPattern.MatchString(r.Host) {
			httpjson.BadRequest(w, "Host header %q cannot be used for jwks_uri; configure the public base URL", r.Host)
			return
		}
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		built, err := identity.NewDiscovery(a.cfg.IssuerURL, scheme+"://"+r.Host)
		if err != nil {
			httpjson.BadRequest(w, "%s", err)
			return
		}
		d, cache = &built, "private, max-age=60"
	}
	w.Header().Set("Cache-Control", cache)
	httpjson.WriteJSON(w, http.StatusOK, d)
}

func (a *API) rotateKeys(w http.ResponseWriter, r *http.Request) {
	var req api.RotateKeyRequest
	if !httpjson.DecodeJSON(w, r, &req, MaxBodyBytes, true) {
		return
	}
	alg := req.Alg
	if alg == "" {
		if _, cur, ok := a.cfg.Keys.Keyring().Current(); ok {
			alg = cur
		} else {
			alg = identity.DefaultAlg
		}
	}
	if !slices.Contains(identity.SupportedAlgs(), alg) {
		httpjson.BadRequest(w, "alg: %q: expected one of %v", alg, identity.SupportedAlgs())
		return
	}
	kid, err := a.cfg.Keys.Rotate(r.Context(), alg)
	if err != nil {
		a.internalError(w, r, "rotating the signing key", err)
		return
	}
	a.changed(ChangeKeys)
	a.log.Info("admin: signing key rotated", "kid", kid, "alg", alg)
	httpjson.WriteJSON(w, http.StatusOK, api.RotatedKey{KID: kid, Alg: alg})
}
