package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/meshguard/meshguard/api"
	"github.com/meshguard/meshguard/catalog"
	"github.com/meshguard/meshguard/catalog/registry"
	"github.com/meshguard/meshguard/identity"
	"github.com/meshguard/meshguard/internal/httpjson"
)

// Services is the service catalogue in force (registry.Registry): the
// services of SERVICES_FILE and those put through this API.
type Services interface {
	List(ctx context.Context) ([]catalog.Entry, error)
	Put(ctx context.Context, s catalog.Service) error
	Delete(ctx context.Context, name string) error
}

var _ Services = (*registry.Registry)(nil)

// servicesError answers a catalogue error: invalid → 400 listing every
// problem where it is (errors, as for policies), defined by the file →
// 409, unknown → 404.
func (a *API) servicesError(w http.ResponseWriter, r *http.Request, what string, err error) {
	var list catalog.ErrorList
	switch {
	case errors.As(err, &list) && len(list) > 0:
		les := make([]api.LocatedError, len(list))
		for i, e := range list {
			les[i] = api.LocatedError{File: e.File, Line: e.Line, Field: e.Path(), Message: e.Msg}
		}
		msg := list[0].Error()
		if len(list) > 1 {
			msg += fmt.Sprintf(" (and %d more; see errors)", len(list)-1)
		}
		httpjson.WriteJSON(w, http.StatusBadRequest, api.ErrorBody{Error: "bad_request", Message: msg, Errors: les})
	case errors.Is(err, catalog.ErrInvalid):
		httpjson.BadRequest(w, "%s", err)
	case errors.Is(err, catalog.ErrFromFile):
		httpjson.WriteError(w, http.StatusConflict, "conflict", "%s", err)
	default:
		a.storeError(w, r, what, err)
	}
}

// listServices is GET /admin/services.
func (a *API) listServices(w http.ResponseWriter, r *http.Request) {
	entries, err := a.cfg.Services.List(r.Context())
	if err != nil {
		a.servicesError(w, r, "listing services", err)
		return
	}
	out := api.ServiceList{Services: make([]api.ServiceEntry, len(entries))}
	for i := range entries {
		out.Services[i] = entries[i].API()
	}
	httpjson.WriteJSON(w, http.StatusOK, out)
}

// getService is GET /admin/services/{name}.
func (a *API) getService(w http.ResponseWriter, r *http.Request) {
	entries, err := a.cfg.Services.List(r.Context())
	if err != nil {
		a.servicesError(w, r, "reading services", err)
		return
	}
	name := r.PathValue("name")
	for _, e := range entries {
		if e.Name == name {
			httpjson.WriteJSON(w, http.StatusOK, e.API())
			return
		}
	}
	httpjson.WriteError(w, http.StatusNotFound, "not_found", "no service %q", name)
}

// putService is PUT /admin/services/{name}: add or replace a service,
// validated with the whole catalogue.
func (a *API) putService(w http.ResponseWriter, r *http.Request) {
	var body api.Service
	if !httpjson.DecodeJSON(w, r, &body, MaxBodyBytes, false) {
		return
	}
	name := r.PathValue("name")
	if body.Name != "" && body.Name != name {
		httpjson.BadRequest(w, "name: the body names %q, the path %q", body.Name, name)
		return
	}
	body.Name = name
	s := catalog.ServiceFromAPI(&body)
	if err := a.cfg.Services.Put(r.Context(), s); err != nil {
		a.servicesError(w, r, "storing a service", err)
		return
	}
	a.log.Info("admin: service put", "service", s.Name)
	a.changed(ChangeServices)
	e := catalog.Entry{Service: s, Source: catalog.SourceStored}
	httpjson.WriteJSON(w, http.StatusOK, e.API())
}

// deleteService is DELETE /admin/services/{name}.
func (a *API) deleteService(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := a.cfg.Services.Delete(r.Context(), name); err != nil {
		if errors.Is(err, identity.ErrNotFound) {
			httpjson.WriteError(w, http.StatusNotFound, "not_found", "no stored service %q", name)
			return
		}
		a.servicesError(w, r, "deleting a service", err)
		return
	}
	a.log.Info("admin: service deleted", "service", name)
	a.changed(ChangeServices)
	w.WriteHeader(http.StatusNoContent)
}
