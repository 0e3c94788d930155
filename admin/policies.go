package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/meshguard/meshguard/api"
	"github.com/meshguard/meshguard/identity"
	"github.com/meshguard/meshguard/internal/edge"
	"github.com/meshguard/meshguard/internal/httpjson"
	"github.com/meshguard/meshguard/policy"
	"github.com/meshguard/meshguard/store"
)

// Limits of the policy endpoints.
const (
	maxPolicyFiles   = 1000
	maxFileLabelLen  = 256
	defaultFileLabel = "request"
)

// infoOf summarises a parsed policy.
func infoOf(p *policy.Policy) api.PolicyInfo {
	src := api.SourceFile
	if strings.HasPrefix(p.Source.File, StoredPrefix) {
		src = api.SourceStored
	}
	return api.PolicyInfo{
		Name: p.Name, Version: p.Version, Description: p.Description, Rules: len(p.Rules),
		Source: src, File: p.Source.File, Line: p.Source.Line,
	}
}

func (a *API) listPolicies(w http.ResponseWriter, r *http.Request) {
	set := a.cfg.Policies.Current()
	out := api.PolicyList{Revision: set.Revision(), Policies: []api.PolicyInfo{}, LoadErrors: locatedErrors(a.cfg.Policies.Err())}
	for _, p := range set.Policies() {
		out.Policies = append(out.Policies, infoOf(p))
	}
	httpjson.WriteJSON(w, http.StatusOK, out)
}

// wantsYAML reports whether the caller asked for a stored policy's YAML:
// ?format=yaml, or an Accept header that prefers YAML to JSON.
func wantsYAML(r *http.Request) bool {
	if r.URL.Query().Get("format") == "yaml" {
		return true
	}
	acc := r.Header.Get("Accept")
	return (strings.Contains(acc, "application/yaml") || strings.Contains(acc, "text/yaml")) && !strings.Contains(acc, "json")
}

func (a *API) getPolicy(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	q, msg := queryParams(r, "format")
	if msg != "" {
		httpjson.BadRequest(w, "%s", msg)
		return
	}
	if f, ok := q["format"]; ok && f != "yaml" && f != "json" {
		httpjson.BadRequest(w, "format: %q: expected json or yaml", f)
		return
	}
	p, inForce := a.cfg.Policies.Current().Policy(name)
	var stored *store.StoredPolicy
	if !inForce || strings.HasPrefix(p.Source.File, StoredPrefix) {
		sp, err := a.cfg.Store.GetPolicy(r.Context(), name)
		switch {
		case err == nil:
			stored = &sp
		case !errors.Is(err, identity.ErrNotFound):
			a.internalError(w, r, "reading the stored policy", err)
			return
		}
	}
	if !inForce && stored == nil {
		httpjson.WriteError(w, http.StatusNotFound, "not_found", "no policy named %q", name)
		return
	}
	if wantsYAML(r) {
		if stored == nil {
			httpjson.WriteError(w, http.StatusNotAcceptable, "not_acceptable", "policy %q is defined in %s:%d, not stored through the API; read its YAML there", name, p.Source.File, p.Source.Line)
			return
		}
		w.Header().Set("Content-Type", "application/yaml; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(stored.YAML))
		return
	}
	out := api.PolicyDetail{InForce: inForce}
	if !inForce {
		// Stored, but the set in force does not have it (the last reload
		// failed): show what the store holds.
		parsed, err := parseOneStored(*stored)
		if err == nil {
			p = parsed
		} else {
			p = &policy.Policy{Name: name, Source: policy.SourceRef{File: StoredPrefix + name}}
		}
	}
	out.PolicyInfo = infoOf(p)
	if len(p.Rules) > 0 || p.DefaultEffect != "" {
		js, err := p.JSON()
		if err != nil {
			a.internalError(w, r, "encoding the policy", err)
			return
		}
		out.Policy = js
	}
	if stored != nil {
		out.YAML = stored.YAML
		out.CreatedAt, out.UpdatedAt = &stored.CreatedAt, &stored.UpdatedAt
	}
	httpjson.WriteJSON(w, http.StatusOK, out)
}

// readPolicyFiles reads the body of apply and validate: YAML (one file,
// named by ?file= in errors) or JSON {"files": [{name, yaml}]}. It answers
// the request itself when it returns false.
func readPolicyFiles(w http.ResponseWriter, r *http.Request) ([]api.PolicyFile, bool) {
	mt, ok := httpjson.MediaType(r)
	if !ok {
		httpjson.WriteError(w, http.StatusUnsupportedMediaType, "unsupported_media_type", "unreadable Content-Type; expected application/yaml or application/json")
		return nil, false
	}
	q, msg := queryParams(r, "file")
	if msg != "" {
		httpjson.BadRequest(w, "%s", msg)
		return nil, false
	}
	switch mt {
	case "", "application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml":
		data, ok := httpjson.ReadBody(w, r, MaxPolicyBodyBytes)
		if !ok {
			return nil, false
		}
		if !utf8.Valid(data) {
			httpjson.BadRequest(w, "the body is not valid UTF-8")
			return nil, false
		}
		label := q["file"]
		if label == "" {
			label = defaultFileLabel
		}
		return []api.PolicyFile{{Name: label, YAML: string(data)}}, checkFileLabels(w, []api.PolicyFile{{Name: label}})
	case "application/json":
		var req api.ApplyRequest
		if !httpjson.DecodeJSON(w, r, &req, MaxPolicyBodyBytes, false) {
			return nil, false
		}
		if len(req.Files) == 0 || len(req.Files) > maxPolicyFiles {
			httpjson.BadRequest(w, "files: expected 1 to %d files", maxPolicyFiles)
			return nil, false
		}
		for i := range req.Files {
			if req.Files[i].Name == "" {
				req.Files[i].Name = fmt.Sprintf("files[%d]", i)
			}
		}
		return req.Files, checkFileLabels(w, req.Files)
	}
	httpjson.WriteError(w, http.StatusUnsupportedMediaType, "unsupported_media_type", "Content-Type %q: expected application/yaml (or text/yaml) or application/json", mt)
	return nil, false
}

// checkFileLabels refuses file names that could not be shown safely in
// errors or that pose as stored policies.
func checkFileLabels(w http.ResponseWriter, files []api.PolicyFile) bool {
	for i, f := range files {
		bad := edge.CheckText(f.Name, maxFileLabelLen) != nil || strings.HasPrefix(f.Name, StoredPrefix)
		if bad {
			httpjson.BadRequest(w, "files[%d].name: expected a file name of at most %d printable characters, not starting with %q", i, maxFileLabelLen, StoredPrefix)
			return false
		}
	}
	return true
}

// refusal is why a set of policy files cannot be applied.
type refusal struct {
	status  int // 400: the request's own policies; 409: they clash with what is in force
	code    string
	message string
	errors  []api.LocatedError
}

// plan is an apply that passed every check.
type plan struct {
	docs     []document
	policies []*policy.Policy // of the request, in request order
	existing map[string]bool  // stored names before the apply
}

// planApply checks files as one change: each parses; no policy takes a
// name a policy file defines; and the set they would make with the files
// and the other stored policies compiles. The error return is for internal
// failures only.
func (a *API) planApply(ctx context.Context, files []api.PolicyFile) (*plan, *refusal, error) {
	pl := &plan{existing: map[string]bool{}}
	var errs policy.ErrorList
	reqFiles := map[string]bool{}
	for _, f := range files {
		reqFiles[f.Name] = true
		ps, err := policy.Parse(f.Name, []byte(f.YAML))
		if err != nil {
			errs = append(errs, locatedList(err)...)
			continue
		}
		docs, err := splitDocuments(f.Name, []byte(f.YAML), ps)
		if err != nil {
			errs = append(errs, &policy.Error{File: f.Name, Msg: "cannot cut the file into one document per policy (" + err.Error() + "); separate policies with a line holding only ---"})
			continue
		}
		pl.docs = append(pl.docs, docs...)
		pl.policies = append(pl.policies, ps...)
	}
	if len(errs) > 0 {
		return nil, &refusal{http.StatusBadRequest, "bad_request", countErrors(len(errs)) + " in the policies; nothing was stored", locatedErrors(errs)}, nil
	}
	if len(pl.docs) == 0 {
		return nil, &refusal{status: http.StatusBadRequest, code: "bad_request", message: "no policies in the request"}, nil
	}

	filePolicies, err := a.filePolicies(ctx)
	var list policy.ErrorList
	switch {
	case errors.As(err, &list):
		return nil, &refusal{http.StatusConflict, "conflict", "the policy files do not load; fix them before applying policies through the API", locatedErrors(list)}, nil
	case err != nil:
		return nil, nil, err
	}
	inFiles := make(map[string]*policy.Policy, len(filePolicies))
	for _, p := range filePolicies {
		inFiles[p.Name] = p
	}
	var clashes []api.LocatedError
	requested := map[string]bool{}
	for _, d := range pl.docs {
		requested[d.name] = true
		if fp, ok := inFiles[d.name]; ok {
			clashes = append(clashes, api.LocatedError{File: d.file, Line: d.line, Field: "name",
				Message: fmt.Sprintf("policy %q is defined in %s:%d; change it there (a policy file cannot be replaced through the API)", d.name, fp.Source.File, fp.Source.Line)})
		}
	}
	if len(clashes) > 0 {
		return nil, &refusal{http.StatusConflict, "conflict", clashes[0].Message, clashes}, nil
	}

	stored, err := a.cfg.Store.ListPolicies(ctx)
	if err != nil {
		return nil, nil, err
	}
	for _, sp := range stored {
		pl.existing[sp.Name] = true
	}
	others, err := parseStored(stored, requested)
	if err != nil {
		return nil, &refusal{http.StatusConflict, "conflict", "stored policies do not load", locatedErrors(err)}, nil
	}
	all := append(append(append(make([]*policy.Policy, 0, len(filePolicies)+len(others)+len(pl.policies)), filePolicies...), others...), pl.policies...)
	if _, err := policy.Compile(all); err != nil {
		les := locatedErrors(err)
		for _, e := range les {
			if reqFiles[e.File] {
				return nil, &refusal{http.StatusBadRequest, "bad_request", countErrors(len(les)) + " in the policy set; nothing was stored", les}, nil
			}
		}
		return nil, &refusal{http.StatusConflict, "conflict", "the policies in force do not compile with these; nothing was stored", les}, nil
	}
	return pl, nil, nil
}

func countErrors(n int) string {
	if n == 1 {
		return "1 error"
	}
	return fmt.Sprintf("%d errors", n)
}

// filePolicies reads the policy files: PolicyFiles, or the file policies of
// the set in force.
func (a *API) filePolicies(ctx context.Context) ([]*policy.Policy, error) {
	if a.cfg.PolicyFiles != nil {
		return a.cfg.PolicyFiles.Policies(ctx)
	}
	var out []*policy.Policy
	for _, p := range a.cfg.Policies.Current().Policies() {
		if !strings.HasPrefix(p.Source.File, StoredPrefix) {
			out = append(out, p)
		}
	}
	return out, nil
}

func writeRefusal(w http.ResponseWriter, rf *refusal) {
	httpjson.WriteJSON(w, rf.status, api.ErrorBody{Error: rf.code, Message: rf.message, Errors: rf.errors})
}

func (a *API) applyPolicies(w http.ResponseWriter, r *http.Request) {
	files, ok := readPolicyFiles(w, r)
	if !ok {
		return
	}
	a.policyMu.Lock()
	defer a.policyMu.Unlock()
	pl, rf, err := a.planApply(r.Context(), files)
	switch {
	case err != nil:
		a.internalError(w, r, "checking the policies", err)
		return
	case rf != nil:
		writeRefusal(w, rf)
		return
	}
	batch := make([]store.StoredPolicy, len(pl.docs))
	for i, d := range pl.docs {
		batch[i] = store.StoredPolicy{Name: d.name, YAML: d.yaml}
	}
	if _, err := a.cfg.Store.PutPolicies(r.Context(), batch); err != nil {
		a.storeError(w, r, "storing the policies", err)
		return
	}
	out := api.ApplyResult{Applied: make([]api.AppliedPolicy, len(pl.docs))}
	for i, d := range pl.docs {
		out.Applied[i] = api.AppliedPolicy{Name: d.name, Created: !pl.existing[d.name], Rules: len(pl.policies[i].Rules)}
	}
	out.Revision, out.InForce, out.Errors = a.reload(r.Context())
	a.changed(ChangePolicies)
	names := make([]string, len(pl.docs))
	for i, d := range pl.docs {
		names[i] = d.name
	}
	a.log.Info("admin: policies applied", "policies", names, "revision", out.Revision, "in_force", out.InForce)
	httpjson.WriteJSON(w, http.StatusOK, out)
}

// reload reloads the policies after a change. A failure leaves the previous
// set in force; it is reported, not hidden.
func (a *API) reload(ctx context.Context) (revision string, inForce bool, errs []api.LocatedError) {
	set, err := a.cfg.Policies.Reload(ctx)
	if err != nil {
		a.log.Error("admin: policy reload after a change failed; the previous set stays in force", "error", err)
		return set.Revision(), false, locatedErrors(err)
	}
	return set.Revision(), true, nil
}

func (a *API) validatePolicies(w http.ResponseWriter, r *http.Request) {
	files, ok := readPolicyFiles(w, r)
	if !ok {
		return
	}
	pl, rf, err := a.planApply(r.Context(), files)
	if err != nil {
		a.internalError(w, r, "checking the policies", err)
		return
	}
	out := api.ValidateResult{Valid: rf == nil, Errors: []api.LocatedError{}, Policies: []api.PolicyInfo{}}
	if rf != nil {
		out.Errors = rf.errors
		if len(out.Errors) == 0 {
			out.Errors = []api.LocatedError{{Message: rf.message}}
		}
	} else {
		// What they would become: stored policies, located in the request.
		for _, p := range pl.policies {
			info := infoOf(p)
			info.Source = api.SourceStored
			out.Policies = append(out.Policies, info)
		}
	}
	httpjson.WriteJSON(w, http.StatusOK, out)
}

func (a *API) deletePolicy(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	a.policyMu.Lock()
	defer a.policyMu.Unlock()
	err := a.cfg.Store.DeletePolicy(r.Context(), name)
	if errors.Is(err, identity.ErrNotFound) {
		if p, ok := a.cfg.Policies.Current().Policy(name); ok {
			httpjson.WriteError(w, http.StatusConflict, "conflict", "policy %q is defined in %s:%d; delete it there", name, p.Source.File, p.Source.Line)
			return
		}
		httpjson.WriteError(w, http.StatusNotFound, "not_found", "no stored policy named %q", name)
		return
	}
	if err != nil {
		a.internalError(w, r, "deleting the policy", err)
		return
	}
	out := api.DeleteResult{Deleted: name}
	out.Revision, out.InForce, out.Errors = a.reload(r.Context())
	a.changed(ChangePolicies)
	a.log.Info("admin: policy deleted", "policy", name, "revision", out.Revision, "in_force", out.InForce)
	httpjson.WriteJSON(w, http.StatusOK, out)
}
