package approvallink

import (
	"context"
	"errors"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/meshguard/meshguard/approval"
	"github.com/meshguard/meshguard/ratelimit"
)

// Decider decides an approval and records the decision in the audit
// trail: the one function the admin API calls too. source is "link". An
// error with a decided approval means the decision stands but its audit
// record failed (approvalapi.ErrUnrecorded).
type Decider interface {
	Decide(ctx context.Context, d approval.Decision, source string) (approval.Approval, error)
}

// Approvals reads an approval as it stands now (the store).
type Approvals interface {
	GetApproval(ctx context.Context, id string) (approval.Approval, error)
}

// Limiter counts requests per client address (the engine's: in memory, or
// shared by replicas on PostgreSQL).
type Limiter interface {
	Allow(ctx context.Context, key string, limit int, window time.Duration) (ratelimit.Result, error)
}

// DefaultRPM bounds link requests a minute from one address: a person
// needs a handful; guessing needs many more than any budget allows.
const DefaultRPM = 30

// maxForm bounds the POST body: a reason and nothing else.
const maxForm = 8 << 10

// Config configures a Handler.
type Config struct {
	Signer    *Signer   // required
	Approvals Approvals // required
	Decider   Decider   // required
	Limiter   Limiter   // required
	RPM       int       // DefaultRPM if 0
	// Names turns a chain of agent ids into names for the page (ids as
	// they are if nil).
	Names  func(ctx context.Context, ids []string) []string
	Logger *slog.Logger
	Now    func() time.Time
}

// Handler serves GET and POST /approvals/{id}.
type Handler struct{ cfg Config }

// New checks cfg.
func New(cfg Config) (*Handler, error) {
	if cfg.Signer == nil || cfg.Approvals == nil || cfg.Decider == nil || cfg.Limiter == nil {
		return nil, errors.New("approvallink: Signer, Approvals, Decider and Limiter are required")
	}
	if cfg.RPM <= 0 {
		cfg.RPM = DefaultRPM
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Names == nil {
		cfg.Names = func(_ context.Context, ids []string) []string { return ids }
	}
	return &Handler{cfg: cfg}, nil
}

// Router is where the Handler registers (httpjson.Router).
type Router interface {
	HandleFunc(pattern string, h http.HandlerFunc)
}

// Register adds the link's two routes.
func (h *Handler) Register(r Router) {
	r.HandleFunc("GET "+PathPrefix+"{id}", h.show)
	r.HandleFunc("POST "+PathPrefix+"{id}", h.decide)
}

// open runs the checks both methods share; it answers and returns false
// when the request goes no further.
func (h *Handler) open(w http.ResponseWriter, r *http.Request) (Params, approval.Approval, bool) {
	hd := w.Header()
	hd.Set("Cache-Control", "no-store")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Content-Security-Policy", "default-src 'none'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	if !h.allow(w, r) {
		return Params{}, approval.Approval{}, false
	}
	p, err := Parse(r.PathValue("id"), r.URL.Query())
	if err == nil {
		err = h.cfg.Signer.Check(&p, h.cfg.Now())
	}
	switch {
	case errors.Is(err, ErrLinkExpired):
		page(w, http.StatusGone, view{Title: "This link has expired", Text: "Ask for a new approval, or decide with `meshguard approvals`."})
		return Params{}, approval.Approval{}, false
	case err != nil:
		h.invalid(w)
		return Params{}, approval.Approval{}, false
	}
	a, err := h.cfg.Approvals.GetApproval(r.Context(), p.ID)
	switch {
	case errors.Is(err, approval.ErrNotFound):
		h.invalid(w)
		return Params{}, approval.Approval{}, false
	case err != nil:
		h.cfg.Logger.ErrorContext(r.Context(), "approval link: reading the approval", "approval", p.ID, "error", err)
		page(w, http.StatusServiceUnavailable, view{Title: "MeshGuard cannot answer now", Text: "Try again in a moment."})
		return Params{}, approval.Approval{}, false
	}
	if a.Status != approval.Pending {
		h.decided(w, &a)
		return Params{}, approval.Approval{}, false
	}
	return p, a, true
}

// invalid is the one answer to every bad link: it says nothing of why,
// nor whether the approval exists.
func (h *Handler) invalid(w http.ResponseWriter) {
	page(w, http.StatusForbidden, view{Title: "This link is not valid", Text: "Use the link exactly as the notification gave it, or decide with `meshguard approvals`."})
}

// decided answers for an approval no longer pending: a link is used once.
func (h *Handler) decided(w http.ResponseWriter, a *approval.Approval) {
	if a.Status == approval.Expired {
		page(w, http.StatusGone, view{Title: "This approval has expired", Text: "It can no longer be decided; the agent's next retry asks again."})
		return
	}
	by := a.DecidedBy
	if by == "" {
		by = "someone"
	}
	verb := string(a.Status)
	if a.Status == approval.Used {
		verb = "approved (and used)"
	}
	page(w, http.StatusConflict, view{Title: "Already decided", Text: "This request was already " + verb + " by " + by + "."})
}

func (h *Handler) show(w http.ResponseWriter, r *http.Request) {
	p, a, ok := h.open(w, r)
	if !ok {
		return
	}
	v := h.describe(r.Context(), &a)
	v.Title, v.Form, v.Decision = "Approval requested", true, p.Decision
	v.Button = "Approve"
	if p.Decision == Deny {
		v.Button = "Deny"
	}
	v.Text = "Nothing is decided until you press the button."
	page(w, http.StatusOK, v)
}

func (h *Handler) decide(w http.ResponseWriter, r *http.Request) {
	p, a, ok := h.open(w, r)
	if !ok {
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	if err := r.ParseForm(); err != nil {
		page(w, http.StatusBadRequest, view{Title: "Bad request", Text: "The form could not be read (at most 8 KiB)."})
		return
	}
	reason := strings.TrimSpace(r.PostForm.Get("reason"))
	// One line, as the approval API takes it (a newline would be refused
	// there, after the page promised a decision).
	if len(reason) > approval.MaxReason || strings.IndexFunc(reason, unicode.IsControl) >= 0 {
		page(w, http.StatusBadRequest, view{Title: "Bad request", Text: "The reason must be one line of text of at most " + strconv.Itoa(approval.MaxReason) + " bytes."})
		return
	}
	got, err := h.cfg.Decider.Decide(r.Context(), approval.Decision{ID: a.ID, Approve: p.Decision == Approve, By: "link:" + p.Channel, Reason: reason}, "link")
	switch {
	case errors.Is(err, approval.ErrNotPending), errors.Is(err, approval.ErrExpired):
		// Decided meanwhile, from another link or the CLI: say by whom.
		if now, gerr := h.cfg.Approvals.GetApproval(r.Context(), a.ID); gerr == nil {
			h.decided(w, &now)
			return
		}
		page(w, http.StatusConflict, view{Title: "Already decided", Text: "This request is no longer pending."})
		return
	case errors.Is(err, approval.ErrNotFound):
		h.invalid(w)
		return
	case err != nil && got.Status != "" && got.Status != approval.Pending:
		// Decided, but its audit record failed (approvalapi.ErrUnrecorded):
		// the decision stands, so the page must not say nothing was.
		h.cfg.Logger.ErrorContext(r.Context(), "approval link: decided but not recorded", "approval", a.ID, "status", got.Status, "error", err)
		page(w, http.StatusInternalServerError, view{Title: "Decided, but not recorded",
			Text: "This request is now " + string(got.Status) + ", but its audit record could not be written: tell the MeshGuard operators (see the server's log)."})
		return
	case err != nil:
		h.cfg.Logger.ErrorContext(r.Context(), "approval link: deciding", "approval", a.ID, "error", err)
		page(w, http.StatusServiceUnavailable, view{Title: "MeshGuard cannot answer now", Text: "Nothing was decided. Try again in a moment."})
		return
	}
	h.cfg.Logger.InfoContext(r.Context(), "approval decided", "approval", got.ID, "status", got.Status, "by", got.DecidedBy, "trace_id", got.TraceID)
	v := h.describe(r.Context(), &got)
	v.Title = "Approved"
	v.Text = "The agent's next retry of this request is allowed."
	if got.Status == approval.Denied {
		v.Title, v.Text = "Denied", "The agent's retries of this request are refused."
	}
	page(w, http.StatusOK, v)
}

// describe is what the page shows of a.
func (h *Handler) describe(ctx context.Context, a *approval.Approval) view {
	agent := a.AgentName
	if agent == "" {
		agent = a.AgentID
	}
	rows := [][2]string{
		{"Agent", agent}, {"Chain", strings.Join(h.cfg.Names(ctx, a.Chain), " → ")}, {"Action", a.Action}, {"Resource", a.Resource},
		{"Call", strings.TrimSpace(a.Method + " " + a.Name)},
	}
	// All else the approval is bound to, redacted as the trail redacts.
	rows = append(rows, a.Shown().Lines()...)
	return view{Rows: append(rows, [][2]string{
		{"Policy", a.Policy + " / " + a.Rule}, {"Expires", a.ExpiresAt.UTC().Format(time.RFC3339)}, {"Approval", a.ID},
	}...)}
}

// allow applies the per-address limit (as the gateway's RATE_LIMIT_RPM):
// a peer address, never a header a client can set.
func (h *Handler) allow(w http.ResponseWriter, r *http.Request) bool {
	key := "approval-link/ip/unknown"
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		if a, err := netip.ParseAddr(host); err == nil {
			a = a.Unmap()
			key = "approval-link/ip/" + a.String()
			if a.Is6() {
				p, _ := a.Prefix(64)
				key = "approval-link/ip/" + p.String()
			}
		}
	}
	res, err := h.cfg.Limiter.Allow(r.Context(), key, h.cfg.RPM, time.Minute)
	switch {
	case err != nil:
		h.cfg.Logger.ErrorContext(r.Context(), "approval link: the rate limiter failed", "error", err)
		page(w, http.StatusServiceUnavailable, view{Title: "MeshGuard cannot answer now", Text: "Try again in a moment."})
		return false
	case !res.Allowed:
		w.Header().Set("Retry-After", strconv.Itoa(max(1, int(res.RetryAfter.Seconds()+0.999))))
		page(w, http.StatusTooManyRequests, view{Title: "Too many requests", Text: "Try again in a minute."})
		return false
	}
	return true
}

// view is what a page shows. Every value is escaped by html/template.
type view struct {
	Title, Text      string
	Rows             [][2]string
	Form             bool
	Decision, Button string
}

var pageTemplate = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="robots" content="noindex"><title>MeshGuard: {{.Title}}</title></head>
<body><h1>{{.Title}}</h1><p>{{.Text}}</p>
{{- if .Rows}}<table>{{range .Rows}}{{if index . 1}}<tr><th align="left">{{index . 0}}</th><td><code>{{index . 1}}</code></td></tr>{{end}}{{end}}</table>{{end}}
{{- if .Form}}<form method="post"><p><label>Reason (optional)<br><input type="text" name="reason" maxlength="1024" size="60"></label></p>
<p><button type="submit">{{.Button}}</button></p></form>{{end}}
</body></html>
`))

func page(w http.ResponseWriter, status int, v view) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_ = pageTemplate.Execute(w, v)
}
