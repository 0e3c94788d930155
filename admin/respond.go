package admin

import (
	"errors"
	"net/http"
	"slices"

	"github.com/meshguard/meshguard/api"
	"github.com/meshguard/meshguard/identity"
	"github.com/meshguard/meshguard/internal/httpjson"
	"github.com/meshguard/meshguard/policy"
	"github.com/meshguard/meshguard/store"
)

// internalError logs err and sends a 500 that says nothing of it.
func (a *API) internalError(w http.ResponseWriter, r *http.Request, what string, err error) {
	a.log.Error("admin: "+what, "method", r.Method, "path", r.URL.Path, "error", err)
	httpjson.WriteError(w, http.StatusInternalServerError, "internal", "internal error while %s; see the server log", what)
}

// storeError answers a store error: the sentinels callers branch on become
// 4xx with the store's message (it names the field or the holder), anything
// else a logged 500.
func (a *API) storeError(w http.ResponseWriter, r *http.Request, what string, err error) {
	switch {
	case errors.Is(err, identity.ErrNotFound):
		httpjson.WriteError(w, http.StatusNotFound, "not_found", "%s", err)
	case errors.Is(err, identity.ErrConflict):
		httpjson.WriteError(w, http.StatusConflict, "conflict", "%s", err)
	case errors.Is(err, identity.ErrInvalidAgent), errors.Is(err, store.ErrInvalidFilter), errors.Is(err, store.ErrInvalidPolicy):
		httpjson.BadRequest(w, "%s", err)
	default:
		a.internalError(w, r, what, err)
	}
}

// locatedErrors converts a policy load error; an error that is not a list
// of located errors becomes one entry without a location.
func locatedErrors(err error) []api.LocatedError {
	var list policy.ErrorList
	if errors.As(err, &list) {
		out := make([]api.LocatedError, len(list))
		for i, e := range list {
			out[i] = api.LocatedError{File: e.File, Line: e.Line, Field: e.Field, Message: e.Msg}
		}
		return out
	}
	var one *policy.Error
	if errors.As(err, &one) {
		return []api.LocatedError{{File: one.File, Line: one.Line, Field: one.Field, Message: one.Msg}}
	}
	if err == nil {
		return nil
	}
	return []api.LocatedError{{Message: err.Error()}}
}

func sortedStrings(s []string) []string {
	slices.Sort(s)
	return s
}
