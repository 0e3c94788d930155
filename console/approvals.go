package console

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"

	"github.com/meshguard/meshguard/api"
	"github.com/meshguard/meshguard/approval"
	"github.com/meshguard/meshguard/approvalapi"
	"github.com/meshguard/meshguard/identity"
	"github.com/meshguard/meshguard/internal/edge"
)

// Approvals answers human approvals (approvalapi.Service): the one Decide
// behind the admin API, the signed link and this console.
type Approvals interface {
	List(ctx context.Context, f approval.Filter) ([]approval.Approval, error)
	Get(ctx context.Context, id string) (approval.Approval, error)
	Decide(ctx context.Context, d approval.Decision, src approvalapi.Source) (approval.Approval, error)
}

// Bounds of the approvals page.
const (
	// approvalRows is how many approvals the queue shows of each kind
	// (pending, then the others).
	approvalRows = 100
	// maxReasonLen bounds an approver's reason.
	maxReasonLen = 1024
)

// consoleBy is who decides, as the approval and its audit record name it:
// the console has one role, the admin token's.
const consoleBy = "console:admin"

// approvalsData is the queue page.
type approvalsData struct {
	Status, Agent string
	Statuses      []string
	Rows          []api.Approval
}

// approvalData is one approval's page: what approvalapi.Full gives the
// admin API, with its JSON parts indented for reading.
type approvalData struct {
	A                          api.Approval
	Arguments, Context, Params string
	Pending                    bool
}

// approvals is GET /ui/approvals?status=&agent=: the queue, pending first
// (newest first within each), then the rest.
func (c *Console) approvals(w http.ResponseWriter, r *http.Request) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err == nil {
		for k, vs := range q {
			switch {
			case k != "status" && k != "agent":
				err = errFilter("unknown query parameter " + strconv.Quote(k) + " (expected status, agent)")
			case len(vs) > 1:
				err = errFilter("query parameter " + strconv.Quote(k) + " is given more than once")
			case edge.CheckText(vs[0], maxFilterLen) != nil:
				err = errFilter(k + ": too long, not UTF-8, or holds a control character")
			}
		}
	} else {
		err = errFilter("the query string does not parse")
	}
	d := approvalsData{Status: q.Get("status"), Agent: q.Get("agent"),
		Statuses: []string{string(approval.Pending), string(approval.Approved), string(approval.Denied), string(approval.Expired), string(approval.Used)}}
	f := approval.Filter{Status: approval.Status(d.Status), AgentID: d.Agent, Limit: approvalRows}
	if err == nil && d.Status != "" && !f.Status.Valid() {
		err = errFilter("status: expected pending, approved, denied, expired or used")
	}
	if err != nil {
		c.render(w, r, http.StatusBadRequest, "approvals", view{Title: "Approvals", Active: "approvals", Error: err.Error(), Data: d})
		return
	}
	if d.Agent != "" {
		// A name or an id, as the decisions page reads it.
		a, err := c.cfg.Agents.GetAgentByName(r.Context(), d.Agent)
		switch {
		case err == nil:
			f.AgentID = a.ID
		case !errors.Is(err, identity.ErrNotFound):
			c.storeError(w, r, err)
			return
		}
	}
	var got []approval.Approval
	if f.Status == "" {
		// The queue first: pending, then the newest of the others.
		pf := f
		pf.Status = approval.Pending
		if got, err = c.cfg.Approvals.List(r.Context(), pf); err == nil {
			var rest []approval.Approval
			rest, err = c.cfg.Approvals.List(r.Context(), f)
			for _, a := range rest {
				if a.Status != approval.Pending {
					got = append(got, a)
				}
			}
		}
	} else {
		got, err = c.cfg.Approvals.List(r.Context(), f)
	}
	if err != nil {
		c.storeError(w, r, err)
		return
	}
	for _, a := range got {
		d.Rows = append(d.Rows, approvalapi.Full(a))
	}
	c.render(w, r, http.StatusOK, "approvals", view{Title: "Approvals", Active: "approvals", Data: d})
}

// approvalPage is GET /ui/approvals/{id}: everything approvalapi.Full
// shows the admin API, and the form that decides it while pending.
func (c *Console) approvalPage(w http.ResponseWriter, r *http.Request) {
	c.showApproval(w, r, http.StatusOK, "")
}

func (c *Console) showApproval(w http.ResponseWriter, r *http.Request, status int, problem string) {
	id := r.PathValue("id")
	if !approval.ValidID(id) {
		c.notFound(w, r)
		return
	}
	a, err := c.cfg.Approvals.Get(r.Context(), id)
	switch {
	case errors.Is(err, approval.ErrNotFound):
		c.notFound(w, r)
		return
	case err != nil:
		c.storeError(w, r, err)
		return
	}
	full := approvalapi.Full(a)
	d := approvalData{A: full, Arguments: indent(full.Arguments), Context: indent(full.Context), Params: indent(full.Params),
		Pending: a.Status == approval.Pending}
	c.render(w, r, status, "approval", view{Title: "Approval " + a.ID, Active: "approvals", Error: problem, Data: d})
}

// decideApproval is POST /ui/approvals/{id}/decide (decision=approve or
// deny, reason): approvalapi's Decide with source console, then the
// approval's page again.
func (c *Console) decideApproval(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !approval.ValidID(id) {
		c.notFound(w, r)
		return
	}
	var approve bool
	switch r.PostForm.Get("decision") {
	case "approve":
		approve = true
	case "deny":
	default:
		c.showApproval(w, r, http.StatusBadRequest, "Choose approve or deny.")
		return
	}
	reason := r.PostForm.Get("reason")
	if len(reason) > maxReasonLen {
		c.showApproval(w, r, http.StatusBadRequest, "The reason is longer than "+strconv.Itoa(maxReasonLen)+" bytes.")
		return
	}
	_, err := c.cfg.Approvals.Decide(r.Context(), approval.Decision{ID: id, Approve: approve, By: consoleBy, Reason: reason}, approvalapi.SourceConsole)
	switch {
	case err == nil:
		http.Redirect(w, r, "/ui/approvals/"+id, http.StatusSeeOther)
	case errors.Is(err, approval.ErrNotFound):
		c.notFound(w, r)
	case errors.Is(err, approval.ErrInvalid):
		c.showApproval(w, r, http.StatusBadRequest, "The reason is refused: it must be UTF-8 text without control characters.")
	case errors.Is(err, approval.ErrExpired):
		c.showApproval(w, r, http.StatusConflict, "This approval expired before it was decided; the agent's next retry asks again.")
	case errors.Is(err, approval.ErrNotPending):
		c.showApproval(w, r, http.StatusConflict, "This approval was already decided: only a pending approval can be.")
	case errors.Is(err, approvalapi.ErrUnrecorded):
		c.log.Error("console: an approval decided but not recorded", "approval", id, "error", err)
		c.showApproval(w, r, http.StatusInternalServerError, "The decision stands, but its audit record could not be written; see the server log.")
	default:
		c.storeError(w, r, err)
	}
}

// indent is a JSON value indented for reading (its keys, order and
// numbers as stored), "" for none.
func indent(raw json.RawMessage) string {
	var b bytes.Buffer
	if len(raw) == 0 || json.Indent(&b, raw, "", "  ") != nil {
		return string(raw)
	}
	return b.String()
}
