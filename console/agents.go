package console

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/meshguard/meshguard/api"
	"github.com/meshguard/meshguard/internal/edge"
	"github.com/meshguard/meshguard/trust"
)

// agentsPageRows is how many agents one page lists: each row reads its
// agent's newest audit record for "last seen", so it bounds those reads.
const agentsPageRows = 100

// maxAgentAnswer bounds what the console reads back from the agent API.
const maxAgentAnswer = 4 << 20

// agentRow is one agent on the agents page.
type agentRow struct {
	api.Agent
	LastSeen string // the time of its newest audit record, "" if none
}

// agentsData is the agents page and an agent's page.
type agentsData struct {
	Agents []agentRow
	Next   string // After of the next page, "" on the last
	Tiers  []string
	// Form is what the create or edit form held, shown again with Error.
	Form url.Values
	// Agent is the agent of an agent's page.
	Agent *agentRow
	// Token is a token just issued: shown on this answer only.
	Token        string
	TokenExpires string
	Created      bool
}

// agentError is an answer of the agent API that was not a success.
type agentError struct {
	status int
	msg    string
}

func (e *agentError) Error() string { return e.msg }

// callAgents sends one request to the admin API's agent handlers
// (Config.AgentAPI) in process and decodes the answer into out. An answer
// of 400 and above is an *agentError carrying the API's message.
func (c *Console) callAgents(ctx context.Context, method, path string, body, out any) error {
	var rd *bytes.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("console: encoding the request: %w", err)
		}
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, err := http.NewRequestWithContext(ctx, method, path, rd)
	if err != nil {
		return fmt.Errorf("console: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	rec := &answer{h: http.Header{}, status: http.StatusOK}
	c.cfg.AgentAPI.ServeHTTP(rec, req)
	if rec.status >= 400 {
		var eb api.ErrorBody
		if json.Unmarshal(rec.b.Bytes(), &eb) != nil || eb.Message == "" {
			eb.Message = http.StatusText(rec.status)
		}
		return &agentError{status: rec.status, msg: eb.Message}
	}
	if rec.b.Len() > maxAgentAnswer {
		return fmt.Errorf("console: the agent API answered %d bytes, more than %d", rec.b.Len(), maxAgentAnswer)
	}
	if err := json.Unmarshal(rec.b.Bytes(), out); err != nil {
		return fmt.Errorf("console: reading the agent API's answer: %w", err)
	}
	return nil
}

// answer is an in-memory http.ResponseWriter for callAgents.
type answer struct {
	h      http.Header
	status int
	wrote  bool
	b      bytes.Buffer
}

func (a *answer) Header() http.Header { return a.h }
func (a *answer) WriteHeader(s int) {
	if !a.wrote {
		a.status, a.wrote = s, true
	}
}
func (a *answer) Write(p []byte) (int, error) {
	a.WriteHeader(http.StatusOK)
	return a.b.Write(p)
}

// lastSeen is the time of id's newest audit record, "" if it has none.
func (c *Console) lastSeen(ctx context.Context, id string) (string, error) {
	t, ok, err := c.cfg.Audit.AgentLastSeen(ctx, id)
	if err != nil || !ok {
		return "", err
	}
	return t.UTC().Format("2006-01-02 15:04:05"), nil
}

// agents is GET /ui/agents: a page of agents in name order, each with
// when it was last seen, and the form that creates one.
func (c *Console) agents(w http.ResponseWriter, r *http.Request) {
	after := ""
	for k, vs := range r.URL.Query() {
		if k != "after" || len(vs) != 1 || edge.CheckText(vs[0], maxFilterLen) != nil {
			c.problem(w, r, http.StatusBadRequest, "Bad query", "The agents page takes one parameter, after (an agent's name).")
			return
		}
		after = vs[0]
	}
	c.agentsPage(w, r, http.StatusOK, after, agentsData{}, "")
}

// agentsPage draws the list with d's form, token or error.
func (c *Console) agentsPage(w http.ResponseWriter, r *http.Request, status int, after string, d agentsData, errText string) {
	q := url.Values{"limit": {fmt.Sprint(agentsPageRows)}}
	if after != "" {
		q.Set("after", after)
	}
	var list api.AgentList
	if err := c.callAgents(r.Context(), http.MethodGet, "/admin/agents?"+q.Encode(), nil, &list); err != nil {
		c.agentAPIError(w, r, err)
		return
	}
	for _, a := range list.Agents {
		seen, err := c.lastSeen(r.Context(), a.ID)
		if err != nil {
			c.storeError(w, r, err)
			return
		}
		d.Agents = append(d.Agents, agentRow{Agent: a, LastSeen: seen})
	}
	d.Next, d.Tiers = list.Next, trust.Names()
	c.render(w, r, status, "agents", view{Title: "Agents", Active: "agents", Error: errText, Data: d})
}

// agentAPIError answers a failed call of the agent API: its message for
// what the caller got wrong, the server log for the rest.
func (c *Console) agentAPIError(w http.ResponseWriter, r *http.Request, err error) {
	if ae := (*agentError)(nil); errors.As(err, &ae) && ae.status < 500 {
		c.problem(w, r, ae.status, "Refused", ae.msg)
		return
	}
	c.log.Error("console: the agent API failed", "error", err)
	c.problem(w, r, http.StatusInternalServerError, "Internal error", "See the server log.")
}

// list splits a comma-separated field into its trimmed, non-empty items.
func list(s string) []string {
	out := []string{}
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// createAgent is POST /ui/agents: the admin API creates the agent; its
// first token is on this answer and nowhere else (not in a URL, a log or
// a later page).
func (c *Console) createAgent(w http.ResponseWriter, r *http.Request) {
	f := r.PostForm
	req := api.CreateAgentRequest{Name: strings.TrimSpace(f.Get("name")), TrustTier: f.Get("tier"),
		Tags: list(f.Get("tags")), Hosts: list(f.Get("hosts"))}
	var out api.AgentWithToken
	if err := c.callAgents(r.Context(), http.MethodPost, "/admin/agents", req, &out); err != nil {
		if ae := (*agentError)(nil); errors.As(err, &ae) && ae.status < 500 {
			c.agentsPage(w, r, ae.status, "", agentsData{Form: f}, "The agent was not created: "+ae.msg)
			return
		}
		c.agentAPIError(w, r, err)
		return
	}
	c.tokenPage(w, r, agentRow{Agent: out.Agent}, out.Token, out.ExpiresAt, true)
}

// tokenPage shows a token just issued, once.
func (c *Console) tokenPage(w http.ResponseWriter, r *http.Request, a agentRow, tok string, exp time.Time, created bool) {
	c.render(w, r, http.StatusOK, "agent", view{Title: "Agent " + a.Name, Active: "agents", Data: agentsData{
		Agent: &a, Token: tok, TokenExpires: exp.UTC().Format(time.RFC3339), Created: created, Tiers: trust.Names()}})
}

// agentPath is the admin API's path of the {id} in r's path, checked.
func agentPath(r *http.Request) (string, bool) {
	id := r.PathValue("id")
	if edge.CheckText(id, maxIDLen) != nil {
		return "", false
	}
	return "/admin/agents/" + url.PathEscape(id), true
}

// agent is GET /ui/agents/{id}: one agent, the form that edits its tier,
// tags and hosts, and its revoke and new-token buttons.
func (c *Console) agent(w http.ResponseWriter, r *http.Request) {
	c.agentPage(w, r, http.StatusOK, nil, "")
}

func (c *Console) agentPage(w http.ResponseWriter, r *http.Request, status int, form url.Values, errText string) {
	p, ok := agentPath(r)
	if !ok {
		c.notFound(w, r)
		return
	}
	var a api.Agent
	if err := c.callAgents(r.Context(), http.MethodGet, p, nil, &a); err != nil {
		c.agentAPIError(w, r, err)
		return
	}
	seen, err := c.lastSeen(r.Context(), a.ID)
	if err != nil {
		c.storeError(w, r, err)
		return
	}
	c.render(w, r, status, "agent", view{Title: "Agent " + a.Name, Active: "agents", Error: errText,
		Data: agentsData{Agent: &agentRow{Agent: a, LastSeen: seen}, Form: form, Tiers: trust.Names()}})
}

// updateAgent is POST /ui/agents/{id}: a new tier, tags and hosts.
func (c *Console) updateAgent(w http.ResponseWriter, r *http.Request) {
	p, ok := agentPath(r)
	if !ok {
		c.notFound(w, r)
		return
	}
	f := r.PostForm
	tier, tags, hosts := f.Get("tier"), list(f.Get("tags")), list(f.Get("hosts"))
	var a api.Agent
	if err := c.callAgents(r.Context(), http.MethodPatch, p, api.AgentPatch{TrustTier: &tier, Tags: &tags, Hosts: &hosts}, &a); err != nil {
		if ae := (*agentError)(nil); errors.As(err, &ae) && ae.status < 500 && ae.status != http.StatusNotFound {
			c.agentPage(w, r, ae.status, f, "Not saved: "+ae.msg)
			return
		}
		c.agentAPIError(w, r, err)
		return
	}
	http.Redirect(w, r, "/ui/agents/"+url.PathEscape(a.ID), http.StatusSeeOther)
}

// revokeAgent is POST /ui/agents/{id}/revoke.
func (c *Console) revokeAgent(w http.ResponseWriter, r *http.Request) {
	p, ok := agentPath(r)
	if !ok {
		c.notFound(w, r)
		return
	}
	var a api.Agent
	if err := c.callAgents(r.Context(), http.MethodDelete, p, nil, &a); err != nil {
		c.agentAPIError(w, r, err)
		return
	}
	http.Redirect(w, r, "/ui/agents/"+url.PathEscape(a.ID), http.StatusSeeOther)
}

// issueToken is POST /ui/agents/{id}/token: a new token, shown once. The
// agent's other tokens stay valid until they expire or are revoked.
func (c *Console) issueToken(w http.ResponseWriter, r *http.Request) {
	p, ok := agentPath(r)
	if !ok {
		c.notFound(w, r)
		return
	}
	var a api.Agent
	if err := c.callAgents(r.Context(), http.MethodGet, p, nil, &a); err != nil {
		c.agentAPIError(w, r, err)
		return
	}
	var tok api.Token
	if err := c.callAgents(r.Context(), http.MethodPost, p+"/token", nil, &tok); err != nil {
		c.agentAPIError(w, r, err)
		return
	}
	c.tokenPage(w, r, agentRow{Agent: a}, tok.Token, tok.ExpiresAt, false)
}

// registerAgents puts the agents pages on m behind page (a session, and
// CSRF and origin checks for each POST).
func (c *Console) registerAgents(m Mux, page func(http.HandlerFunc) http.Handler) {
	m.Handle("GET /ui/agents", page(c.agents))
	m.Handle("POST /ui/agents", page(c.createAgent))
	m.Handle("GET /ui/agents/{id}", page(c.agent))
	m.Handle("POST /ui/agents/{id}", page(c.updateAgent))
	m.Handle("POST /ui/agents/{id}/revoke", page(c.revokeAgent))
	m.Handle("POST /ui/agents/{id}/token", page(c.issueToken))
}
