// Package console is MeshGuard's web console under /ui/ on the HTTP port
// (docs/console.md): server-rendered pages (html/template) with one small
// stylesheet and small scripts, all embedded, no framework and nothing
// fetched from elsewhere. It signs in with the admin token, keeps an
// HMAC-signed session in a cookie, guards every form with a CSRF token and
// an Origin check, and sends a strict Content-Security-Policy with every
// answer.
//
// It reads what the admin API reads, from the same store: the audit trail
// (pages, the follow behind /admin/audit/stream, one trace) and the policy
// set in force.
package console

import (
	"context"
	"crypto/sha256"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/identity"
	"github.com/meshguard/meshguard/policy"
	"github.com/meshguard/meshguard/ratelimit"
	"github.com/meshguard/meshguard/store"
)

// Prefix is where the console is served.
const Prefix = "/ui/"

// Defaults and bounds.
const (
	// DefaultSessionTTL is how long a sign-in lasts.
	DefaultSessionTTL = 12 * time.Hour
	// MaxSessionTTL bounds Config.SessionTTL.
	MaxSessionTTL = 7 * 24 * time.Hour
	// DefaultLoginRPM is how many sign-in attempts one client address may
	// make a minute.
	DefaultLoginRPM = 10
	// MaxStreams bounds the live decision streams open at once.
	MaxStreams = 64
	// MaxStreamsPerSession bounds the live streams one session may hold,
	// so one signed-in browser cannot take every slot of MaxStreams.
	MaxStreamsPerSession = 8
	// MinSecretBytes is the shortest session secret New accepts.
	MinSecretBytes = 32
)

// Token is the admin token in force (admin.TokenCheck): the one check of
// a sign-in, and a value that changes with the token, which keys the
// sessions so a new token ends them.
type Token interface {
	Matches(tok string) bool
	Binding() [sha256.Size]byte
}

// AuditLog is the stored trail the pages read (store.SQLite, store.Postgres).
type AuditLog interface {
	QueryAudit(ctx context.Context, f store.AuditFilter) (store.AuditPage, error)
	ScanAuditFiltered(ctx context.Context, f store.AuditFilter, fn func(r audit.Record, cursor string) error) error
	FollowFromNow(ctx context.Context) (store.FollowCursor, error)
	FollowAudit(ctx context.Context, f store.AuditFilter, cur *store.FollowCursor, fn func(r audit.Record, cur *store.FollowCursor) error) error
	AuditRecord(ctx context.Context, id string) (audit.Record, bool, error)
	AuditStats(ctx context.Context, from, to time.Time) (audit.Stats, error)
	AuditPerMinute(ctx context.Context, from, to time.Time) ([]audit.Minute, error)
	// AgentLastSeen is the time of an agent's newest record (the agents page).
	AgentLastSeen(ctx context.Context, id string) (time.Time, bool, error)
}

// Agents resolves an agent filter given by name to the id records keep.
type Agents interface {
	GetAgentByName(ctx context.Context, name string) (identity.Agent, error)
}

// Policies is the policy set in force and the error of the last reload
// attempt (policy.Loader).
type Policies interface {
	Current() *policy.Set
	Err() error
}

// Limiter counts sign-in attempts per client address (the engine's).
type Limiter interface {
	Allow(ctx context.Context, key string, limit int, window time.Duration) (ratelimit.Result, error)
}

// Config wires a Console. Token, Secret, Audit, Agents, Policies and
// Limiter are required.
type Config struct {
	Token Token
	// Secret keys the sessions' MAC (store Secret("console-session", 32),
	// shared by replicas so a session works on each).
	Secret   []byte
	Audit    AuditLog
	Agents   Agents
	Policies Policies
	Limiter  Limiter
	// Approvals, if set, serves the approvals pages (approvalapi.Service).
	Approvals Approvals
	// Alerts and XDS, if set, serve the alerts and xDS status pages.
	Alerts AlertsStatus
	XDS    XDSStatus
	// TraceURL, if set, links each trace id to the tracing backend:
	// {traceId} is replaced by the id, path-escaped (config.CheckTraceURL).
	TraceURL string
	// SessionTTL is how long a sign-in lasts (DefaultSessionTTL if zero).
	SessionTTL time.Duration
	// LoginRPM bounds sign-in attempts per client address a minute
	// (DefaultLoginRPM if zero).
	LoginRPM int
	// FollowPoll is how often a live stream reads new records (250 ms if
	// zero), as /admin/audit/stream does.
	FollowPoll time.Duration
	Logger     *slog.Logger // nil discards
	Now        func() time.Time

	// AgentAPI is the admin API's agent handlers (admin.API.AgentsHandler):
	// the agents pages list, create, edit and revoke through them.
	AgentAPI http.Handler
}

// Console serves the pages.
type Console struct {
	cfg     Config
	log     *slog.Logger
	keys    sessionKeys
	pages   map[string]*template.Template
	static  fs.FS
	streams chan struct{} // a slot per open stream

	mu         sync.Mutex
	perSession map[[sessionIDBytes]byte]int // open streams of each session
}

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// ErrConfig: a Config New refuses.
var ErrConfig = errors.New("console: invalid configuration")

// New checks cfg and builds the console.
func New(cfg Config) (*Console, error) {
	switch {
	case cfg.Token == nil || cfg.Audit == nil || cfg.Agents == nil || cfg.Policies == nil || cfg.Limiter == nil:
		return nil, fmt.Errorf("%w: Token, Audit, Agents, Policies and Limiter are required", ErrConfig)
	case len(cfg.Secret) < MinSecretBytes:
		return nil, fmt.Errorf("%w: the session secret must be at least %d bytes", ErrConfig, MinSecretBytes)
	case cfg.SessionTTL < 0 || cfg.SessionTTL > MaxSessionTTL:
		return nil, fmt.Errorf("%w: SessionTTL %s is outside 0..%s", ErrConfig, cfg.SessionTTL, MaxSessionTTL)
	case cfg.LoginRPM < 0:
		return nil, fmt.Errorf("%w: LoginRPM must not be negative", ErrConfig)
	}
	if cfg.AgentAPI == nil {
		return nil, fmt.Errorf("%w: AgentAPI is required", ErrConfig)
	}
	if cfg.SessionTTL == 0 {
		cfg.SessionTTL = DefaultSessionTTL
	}
	if cfg.LoginRPM == 0 {
		cfg.LoginRPM = DefaultLoginRPM
	}
	if cfg.FollowPoll <= 0 {
		cfg.FollowPoll = 250 * time.Millisecond
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	c := &Console{cfg: cfg, log: cfg.Logger, keys: newSessionKeys(cfg.Secret, cfg.Token.Binding()),
		streams: make(chan struct{}, MaxStreams), perSession: map[[sessionIDBytes]byte]int{}}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	var err error
	if c.pages, err = parsePages(); err != nil {
		return nil, err
	}
	if c.static, err = fs.Sub(staticFS, "static"); err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	return c, nil
}

// Mux is where routes are registered (httpjson.Router).
type Mux interface {
	Handle(pattern string, h http.Handler)
}

// Register puts the console's routes on m. Every answer carries the
// security headers; every page but sign-in and the static files needs a
// session.
func (c *Console) Register(m Mux) {
	page := func(h http.HandlerFunc) http.Handler { return secured(c.requireSession(h)) }
	m.Handle("GET /ui/{$}", page(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/ui/decisions", http.StatusSeeOther)
	}))
	m.Handle("GET /ui/login", secured(http.HandlerFunc(c.loginPage)))
	m.Handle("POST /ui/login", secured(http.HandlerFunc(c.login)))
	m.Handle("POST /ui/logout", page(c.logout))
	m.Handle("GET /ui/static/{file}", secured(http.HandlerFunc(c.staticFile)))
	m.Handle("GET /ui/decisions", page(c.decisions))
	m.Handle("GET /ui/decisions/stream", page(c.stream))
	m.Handle("GET /ui/decisions/{id}", page(c.decision))
	m.Handle("GET /ui/traces/{traceId}", page(c.trace))
	m.Handle("GET /ui/overview", page(c.overview))
	m.Handle("GET /ui/policies", page(c.policies))
	m.Handle("POST /ui/policies/playground", page(c.playground))
	if c.cfg.Approvals != nil {
		m.Handle("GET /ui/approvals", page(c.approvals))
		m.Handle("GET /ui/approvals/{id}", page(c.approvalPage))
		m.Handle("POST /ui/approvals/{id}/decide", page(c.decideApproval))
	}
	if c.cfg.Alerts != nil {
		m.Handle("GET /ui/alerts", page(c.alerts))
	}
	if c.cfg.XDS != nil {
		m.Handle("GET /ui/xds", page(c.xds))
	}
	c.registerAgents(m, page)
}

// Public routes: the ones Register serves without a session.
var Public = []string{"GET /ui/login", "POST /ui/login", "GET /ui/static/{file}"}

// staticFile serves the embedded stylesheet and scripts.
func (c *Console) staticFile(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("file")
	b, err := fs.ReadFile(c.static, name)
	if err != nil {
		c.notFound(w, r)
		return
	}
	switch {
	case len(name) > 4 && name[len(name)-4:] == ".css":
		w.Header().Set("Content-Type", "text/css; charset=utf-8")
	case len(name) > 3 && name[len(name)-3:] == ".js":
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	default:
		c.notFound(w, r)
		return
	}
	_, _ = w.Write(b)
}
