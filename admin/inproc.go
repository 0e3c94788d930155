package admin

import "net/http"

// AgentsHandler serves the agent routes of the admin API — list, create,
// get, update, revoke, issue a token — without the admin-token check, for
// a caller in this process that has authenticated the admin itself (the
// web console, behind its session and CSRF checks). The console sends its
// forms through it, so every rule of an agent change has one copy: this
// package's. It must never be mounted on a router.
func (a *API) AgentsHandler() http.Handler {
	m := http.NewServeMux()
	m.HandleFunc("GET /admin/agents", a.listAgents)
	m.HandleFunc("POST /admin/agents", a.createAgent)
	m.HandleFunc("GET /admin/agents/{id}", a.getAgent)
	m.HandleFunc("PATCH /admin/agents/{id}", a.updateAgent)
	m.HandleFunc("DELETE /admin/agents/{id}", a.revokeAgent)
	m.HandleFunc("POST /admin/agents/{id}/token", a.issueToken)
	return m
}
