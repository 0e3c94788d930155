// Package filterapi is the wasm filter's backend on the main port
// (docs/wasm-filter.md): GET /v1/filter/config, the configuration the
// filter decides by; POST /v1/filter/check, the requests it defers to
// MeshGuard, answered as verdicts; and POST /v1/filter/audit, the records
// of its own decisions, checked and sealed into the audit trail. Each
// filter authenticates with a credential of its proxy's own (proxyauth):
// one for these endpoints alone, never for the admin API, which marks the
// records that filter ships.
//
// It is an adapter like extauthz and gateway: a deferred request is
// decided by the engine, and a shipped allow is held to what MeshGuard
// would have given. It never decides a request itself; a call it cannot
// authenticate, check or store is refused, never accepted.
package filterapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/meshguard/meshguard/agentproto"
	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/filterprotocol"
	"github.com/meshguard/meshguard/identity"
	"github.com/meshguard/meshguard/internal/edge"
	"github.com/meshguard/meshguard/internal/httpjson"
	"github.com/meshguard/meshguard/policy"
)

// Checker decides the requests a filter defers (engine.Engine).
type Checker interface {
	Check(ctx context.Context, r *engine.Request) (engine.Decision, error)
}

// Agents looks up the agent a shipped allow names (store.SQLite).
type Agents interface {
	GetAgent(ctx context.Context, id string) (identity.Agent, error)
}

// Policies are the policies in force and those in force lately
// (policy.Loader), which shipped allows are checked against.
type Policies interface {
	Current() *policy.Set
	Revision(rev string) (*policy.Set, bool)
}

// What the server passes in satisfies the interfaces.
var (
	_ Checker  = (*engine.Engine)(nil)
	_ Policies = (*policy.Loader)(nil)
)

// Mux is where routes are registered (httpjson.Router, which lists them
// for the credential tests and answers what none matches).
type Mux interface {
	Handle(pattern string, h http.Handler)
}

// Config wires the API. Engine, Agents, Policies, Authenticate and
// Generate are required.
type Config struct {
	Engine   Checker
	Agents   Agents
	Policies Policies
	// Authenticate returns the proxy a filter credential belongs to, or
	// an error when it belongs to none (proxyauth.Authenticator.Filter).
	Authenticate func(token string) (proxy string, err error)
	// Generate returns the filter's configuration in force and its
	// revision.
	Generate func(ctx context.Context) (doc []byte, revision string, err error)
	// Recorder stores the records filters ship (audit.Writer); nil when
	// the audit trail is off, and batches are then accepted and dropped.
	Recorder engine.Recorder
	// Observer counts the filters' decisions with the server's own
	// (telemetry.Metrics); optional.
	Observer engine.Observer
	// Dropped, if set, is told how many records a filter had to drop.
	Dropped func(n uint64)
	// Logger gets one line per refused call and per failure, never a
	// credential; nil discards.
	Logger *slog.Logger
	// Now is the clock shipped records' stamps are held to (time.Now if
	// nil).
	Now func() time.Time
}

// API serves the filter's endpoints. Create it with New and Register it
// on the server's router.
type API struct {
	cfg Config
	log *slog.Logger
}

// New checks cfg and builds the API.
func New(cfg Config) (*API, error) {
	if cfg.Engine == nil || cfg.Agents == nil || cfg.Policies == nil || cfg.Generate == nil || cfg.Authenticate == nil {
		return nil, errors.New("filterapi: Config.Engine, Agents, Policies, Generate and Authenticate required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	a := &API{cfg: cfg, log: cfg.Logger}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	return a, nil
}

// Register registers the filter's endpoints on m, each behind the proxy
// credential check.
func (a *API) Register(m Mux) {
	m.Handle("GET "+filterprotocol.ConfigPath, a.requireFilter(a.filterConfiguration))
	m.Handle("POST "+filterprotocol.CheckPath, a.requireFilter(a.filterCheck))
	m.Handle("POST "+filterprotocol.AuditPath, a.requireFilter(a.filterAudit))
}

// ConfigHandler serves the configuration as GET /v1/filter/config does,
// without its credential check: the admin API serves it to the admin
// token as GET /admin/filter/config.
func (a *API) ConfigHandler() http.Handler { return http.HandlerFunc(a.filterConfiguration) }

// MaxFilterAuditBytes bounds a batch of audit records: MaxAuditBatch
// records at the engine's input bounds fit.
const MaxFilterAuditBytes = 32 << 20

// Bounds on what a filter may claim. A record is stamped when the filter
// decided; it may have waited out an outage in the filter's queue, but not
// for days, and not come from the future (beyond clock skew).
const (
	maxRecordAge     = 24 * time.Hour
	maxRecordAhead   = 5 * time.Minute
	maxReportedDrops = 1 << 40
	// maxRecordedAction is the longest action the engine records: one
	// derived from a path (verb:path, the path up to engine.MaxPathLen),
	// or a protocol call's refused for exceeding engine.MaxActionLen
	// (a tool name of up to agentproto.MaxName). A record the filter's
	// engine wrote must not be refused: the filter drops a refused batch,
	// and every decision in it with the one record.
	maxRecordedAction = len("connect:") + engine.MaxPathLen
)

// proxyKey is the context key of the proxy a filter call came from.
type proxyKey struct{}

// requireFilter lets a request through only with a proxy's filter
// credential, and tells the handler which proxy it is.
func (a *API) requireFilter(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proxy, err := a.cfg.Authenticate(r.Header.Get(filterprotocol.HeaderFilterToken))
		if err != nil || proxy == "" {
			a.log.Warn("filterapi: a /v1/filter call without a valid filter credential", "path", r.URL.Path, "remote", r.RemoteAddr, "error", err)
			httpjson.WriteError(w, http.StatusUnauthorized, "unauthorized", "missing or invalid filter credential in "+filterprotocol.HeaderFilterToken)
			return
		}
		h(w, r.WithContext(context.WithValue(r.Context(), proxyKey{}, proxy)))
	})
}

// filterProxy is the proxy a filter call authenticated as.
func filterProxy(ctx context.Context) string {
	p, _ := ctx.Value(proxyKey{}).(string)
	return p
}

// filterConfiguration is GET /v1/filter/config (and, for the admin token,
// GET /admin/filter/config). The revision is its ETag:
// a filter that sends the one it has in If-None-Match gets a 304 and no
// body while nothing changed.
func (a *API) filterConfiguration(w http.ResponseWriter, r *http.Request) {
	body, rev, err := a.cfg.Generate(r.Context())
	if err != nil {
		a.log.Error("filterapi: generating the wasm filter configuration", "error", err)
		httpjson.WriteError(w, http.StatusServiceUnavailable, "unavailable", "the filter configuration cannot be generated; try again")
		return
	}
	etag := strconv.Quote(rev)
	w.Header().Set("ETag", etag)
	w.Header().Set("Cache-Control", "no-cache")
	if r.Header.Get("If-None-Match") == etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}

// filterCheck is POST /v1/filter/check: a request the filter deferred,
// decided by the engine and answered as a Verdict.
func (a *API) filterCheck(w http.ResponseWriter, r *http.Request) {
	var dc filterprotocol.DeferredCheck
	// Bounded above the API's default: the check may carry a protocol
	// route's body (filterprotocol.MaxCheckBytes).
	if !httpjson.DecodeJSON(w, r, &dc, filterprotocol.MaxCheckBytes, false) {
		return
	}
	er, msg := dc.Request()
	if msg != "" {
		httpjson.BadRequest(w, "%s", msg)
		return
	}
	er.Proxy = filterProxy(r.Context()) // recorded with the decision
	d, err := a.cfg.Engine.Check(r.Context(), &er)
	if err != nil {
		a.log.Error("filterapi: /v1/filter/check: MeshGuard could not decide", "error", err)
		httpjson.WriteError(w, http.StatusServiceUnavailable, "unavailable", "MeshGuard could not decide the request; try again")
		return
	}
	httpjson.WriteJSON(w, http.StatusOK, filterprotocol.NewVerdict(&d))
}

// filterAudit is POST /v1/filter/audit: the records of a filter's own
// decisions. Each is checked as the engine checks its input, given a
// server-made id and sealed into the chain like any other record; one bad
// record refuses the batch (400) and stores nothing of it.
//
// The filter credential is trusted as the proxies that hold it are: a
// proxy enforces, so one that lies could as well let anything through.
// What is checked here keeps a holder from making records no proxy could
// (out-of-bounds fields, stamps from another day).
func (a *API) filterAudit(w http.ResponseWriter, r *http.Request) {
	var b filterprotocol.AuditBatch
	if !httpjson.DecodeJSON(w, r, &b, MaxFilterAuditBytes, false) {
		return
	}
	if len(b.Records) > filterprotocol.MaxAuditBatch {
		httpjson.BadRequest(w, "records: %d, at most %d in one batch", len(b.Records), filterprotocol.MaxAuditBatch)
		return
	}
	if b.Dropped > maxReportedDrops {
		httpjson.BadRequest(w, "dropped: %d: more than a filter can hold", b.Dropped)
		return
	}
	if err := checkText("revision", b.Revision, 64); err != nil {
		httpjson.BadRequest(w, "%v", err)
		return
	}
	proxy := filterProxy(r.Context())
	now := a.cfg.Now()
	for i := range b.Records {
		if err := checkFilterRecord(&b.Records[i], now); err != nil {
			httpjson.BadRequest(w, "records[%d]: %v", i, err)
			return
		}
		if err := a.reproduceAllow(r.Context(), &b.Records[i]); err != nil {
			if !errors.Is(err, errNotReproduced) {
				a.log.Error("filterapi: checking a wasm filter's record", "error", err)
				httpjson.WriteError(w, http.StatusServiceUnavailable, "unavailable", "the records cannot be checked now; try again")
				return
			}
			a.log.Warn("filterapi: a wasm filter shipped an allow MeshGuard would not give; the batch is refused", "proxy", proxy, "record", i, "error", err)
			httpjson.BadRequest(w, "records[%d]: %v", i, err)
			return
		}
	}
	if b.Dropped > 0 {
		a.log.Warn("filterapi: a wasm filter dropped audit records (its buffer was full, or MeshGuard refused a batch)", "dropped", b.Dropped, "revision", b.Revision, "remote", r.RemoteAddr)
		if a.cfg.Dropped != nil {
			a.cfg.Dropped(b.Dropped)
		}
	}
	for i := range b.Records {
		rec := &b.Records[i]
		rec.ID = engine.NewAuditID(time.Now())
		rec.PrevHash, rec.Hash = "", ""
		rec.Proxy = proxy // the filter's own claim, if any, is not believed
		if a.cfg.Recorder != nil {
			if err := a.cfg.Recorder.Write(r.Context(), *rec); err != nil {
				// The filter keeps the batch and sends it again; records
				// already queued are then stored twice, under new ids,
				// which a query by decision id shows.
				a.log.Error("filterapi: storing a wasm filter's audit records", "error", err, "stored", i, "of", len(b.Records))
				httpjson.WriteError(w, http.StatusServiceUnavailable, "unavailable", "the audit trail cannot store records now; try again")
				return
			}
		}
		if a.cfg.Observer != nil {
			a.cfg.Observer.Decided(string(engine.SourceWasm), rec.Decision, time.Duration(rec.LatencyUs)*time.Microsecond)
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

// errBadRecord is what every refusal of checkFilterRecord is (errors.Is):
// a record the engine could not have written.
var errBadRecord = errors.New("not a record the engine writes")

// fieldError is one field's refusal. Its text, "field: reason", is the
// 400's message as the filter's operators read it; it is an errBadRecord,
// and unwraps to the engine's own reason when there is one
// (edge.ErrTextTooLong, ...).
type fieldError struct {
	field, reason string
	err           error
}

func (e *fieldError) Error() string        { return e.field + ": " + e.reason }
func (e *fieldError) Unwrap() error        { return e.err }
func (e *fieldError) Is(target error) bool { return target == errBadRecord }

// checkFilterRecord holds a shipped record to what the engine would have
// written: the filter's source, a decision, a status, and strings within
// the engine's bounds without control characters (a NUL would make
// PostgreSQL refuse the whole batch, again and again). A refusal is a
// *fieldError.
func checkFilterRecord(rec *audit.Record, now time.Time) error {
	bad := func(field, reason string) error { return &fieldError{field: field, reason: reason} }
	switch {
	case rec.Timestamp.Before(now.Add(-maxRecordAge)) || rec.Timestamp.After(now.Add(maxRecordAhead)):
		return bad("timestamp", rec.Timestamp.UTC().Format(time.RFC3339)+" is not within the last day")
	case rec.Source != string(engine.SourceWasm):
		return bad("source", strconv.Quote(rec.Source)+": expected wasm")
	case rec.Decision != "allow" && rec.Decision != "deny":
		return bad("decision", "expected allow or deny")
	case rec.Mode != string(engine.ModeEnforce) && rec.Mode != string(engine.ModeAudit):
		return bad("mode", "expected enforce or audit")
	case rec.Status < 200 || rec.Status > 599:
		return bad("status", strconv.Itoa(rec.Status)+": expected an HTTP status")
	case len(rec.Chain) > 64 || len(rec.Context) > engine.MaxContextKeys:
		return bad("chain or context", "too long")
	case rec.LatencyUs < 0 || rec.DelegationDepth < 0:
		return bad("latencyUs and delegationDepth", "must not be negative")
	}
	for _, f := range []struct {
		name, v string
		max     int
	}{
		{"traceId", rec.TraceID, 32}, {"spanId", rec.SpanID, 16}, {"decisionId", rec.DecisionID, 64},
		{"agentId", rec.AgentID, 64}, {"agentName", rec.AgentName, 128}, {"trustTier", rec.TrustTier, 16},
		{"action", rec.Action, maxRecordedAction}, {"resource", rec.Resource, engine.MaxResourceLen},
		{"method", rec.Method, 16}, {"path", rec.Path, engine.MaxPathLen}, {"host", rec.Host, engine.MaxHostLen},
		{"reason", rec.Reason, 64}, {"policy", rec.Policy, 256}, {"rule", rec.Rule, 256},
		{"sourceAddress", rec.SourceAddress, 64}, {"policyRevision", rec.PolicyRevision, 64},
	} {
		if err := checkText(f.name, f.v, f.max); err != nil {
			return err
		}
	}
	for _, id := range rec.Chain {
		if err := checkText("chain", id, 64); err != nil {
			return err
		}
	}
	if err := checkFilterInputs(rec); err != nil {
		return err
	}
	if err := checkFilterApproval(rec); err != nil {
		return err
	}
	if err := checkFilterShadow(rec.Shadow); err != nil {
		return err
	}
	if rec.Call != nil {
		return checkFilterCall(rec.Call, rec.Method, rec.Action)
	}
	return nil
}

// checkFilterCall holds a shipped record's call to what the engine records
// of one (engine.recordCall, from agentproto's parse): a known protocol,
// fields within agentproto's bounds under the text rule, a JSON-RPC id
// that is a number or a string as JSON text, and a digest that is one. The
// arguments themselves are never shipped: recording them is MeshGuard's
// setting (AUDIT_ARGUMENTS) for the calls it decides itself. The call must
// be the one action names (agentproto.RecordedAction), with a digest
// exactly when it carries arguments it was decided on: an allowed
// call:mail/list_inbox must not be recorded as a delete_inbox call, nor a
// tools/call lose the digest a reader checks its arguments with.
func checkFilterCall(c *audit.Call, httpMethod, action string) error {
	bad := func(field, reason string) error { return &fieldError{field: "call." + field, reason: reason} }
	switch {
	case c.Protocol != string(agentproto.MCP) && c.Protocol != string(agentproto.A2A):
		return bad("protocol", strconv.Quote(c.Protocol)+": expected mcp or a2a")
	case c.Method == "" || edge.HasSpaceOrControl(c.Method):
		return bad("method", "empty, or holds a space")
	case httpMethod == "POST" && c.Notification != (c.JSONRPCID == ""):
		return bad("notification", "a notification is exactly a call without an id")
	case httpMethod != "POST" && (c.Notification || c.JSONRPCID != ""):
		// MCP's GET and DELETE, A2A's Agent Card: no JSON-RPC request.
		return bad("notification", "a call that is no JSON-RPC request has no id and is no notification")
	case c.JSONRPCID != "" && !validID(c.JSONRPCID):
		return bad("jsonrpcId", "expected a JSON number or string")
	case c.ArgumentsDigest != "" && !validDigest(c.ArgumentsDigest):
		return bad("argumentsDigest", "expected 64 lower-case hex digits")
	case c.HeaderOnly && c.ArgumentsDigest != "":
		return bad("argumentsDigest", "a header-only call's arguments were not seen")
	case c.Arguments != nil || c.ArgumentsOmitted:
		return bad("arguments", "a filter ships the arguments' digest, never the arguments")
	}
	for _, f := range []struct{ name, v string }{
		// jsonrpcId is JSON text, held by validID: a string id of
		// MaxName bytes is up to six times longer escaped.
		{"method", c.Method}, {"name", c.Name},
		{"sessionId", c.SessionID}, {"taskId", c.TaskID}, {"contextId", c.ContextID},
	} {
		if err := checkText("call."+f.name, f.v, agentproto.MaxName); err != nil {
			return err
		}
	}
	proto := agentproto.Protocol(c.Protocol)
	// The service is the action's first resource segment, as every
	// protocol action spells it (call:S/N, send:S, connect:S).
	_, resource, _ := strings.Cut(action, ":")
	service, _, _ := strings.Cut(resource, "/")
	if want := agentproto.RecordedAction(proto, service, httpMethod, c.Method, c.Name); want == "" || want != action {
		return bad("method", fmt.Sprintf("%s %s %q is not the call of action %q", c.Protocol, c.Method, c.Name, action))
	}
	if digest := agentproto.CarriesArguments(proto, c.Method) && !c.HeaderOnly; digest != (c.ArgumentsDigest != "") {
		return bad("argumentsDigest", "expected exactly for a tools/call or prompts/get decided on its body")
	}
	return nil
}

// validID reports whether id is a JSON-RPC id as agentproto keeps it: a
// JSON string whose value keeps the text rule, or a number of at most 64 characters.
func validID(id string) bool {
	if id[0] == '"' {
		if len(id) > 6*agentproto.MaxName+2 { // every byte escaped as \u00XX
			return false
		}
		var s string
		return json.Unmarshal([]byte(id), &s) == nil && edge.CheckText(s, agentproto.MaxName) == nil
	}
	var n json.Number
	return len(id) <= 64 && (id[0] == '-' || id[0] >= '0' && id[0] <= '9') && json.Unmarshal([]byte(id), &n) == nil
}

func validDigest(d string) bool {
	if len(d) != 64 {
		return false
	}
	for i := range len(d) {
		if c := d[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// checkText holds a text field to edge.CheckText, the engine's own rule,
// worded for this endpoint's messages.
func checkText(name, v string, limit int) error {
	err := edge.CheckText(v, limit)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, edge.ErrTextTooLong):
		return &fieldError{field: name, reason: "longer than " + strconv.Itoa(limit) + " bytes", err: err}
	case errors.Is(err, edge.ErrTextNotUTF8):
		return &fieldError{field: name, reason: "not valid UTF-8", err: err}
	default:
		return &fieldError{field: name, reason: "contains a control character", err: err}
	}
}
