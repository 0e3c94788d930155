// Package filterconfig is the wasm filter's plugin configuration: the JSON
// document MeshGuard generates from its signing keys, agents, policies,
// routes and service catalogue (Generate), which its xDS control plane
// pushes to Envoys and GET /v1/filter/config serves, and which the filter
// reads strictly (Parse).
//
// It is the document and nothing more: the filter compiles it into its
// engine with package filterdecider, and talks to MeshGuard with package
// filterprotocol. The server imports this package to generate the
// document without the decider's engine coming along.
//
// The package builds for wasip1; docs/wasm-filter.md is the reference.
package filterconfig

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/meshguard/meshguard/agentproto"
	"github.com/meshguard/meshguard/catalog"
	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/filterprotocol"
	"github.com/meshguard/meshguard/identity"
	"github.com/meshguard/meshguard/trust"
)

// Version is the configuration format this package reads and writes.
const Version = 1

// Bounds: every limit is bounded (docs/wasm-filter.md).
const (
	// MaxBytes bounds a configuration document: 10,000 agents with tags
	// and hosts, and a policy set, fit well inside it.
	MaxBytes = 16 << 20
	// MaxAgents bounds the agents (and the revoked agents) it lists.
	MaxAgents = 100_000
	// MaxPolicies bounds the policies it carries.
	MaxPolicies = 10_000
)

// ErrInvalid wraps every reason a configuration is refused.
var ErrInvalid = errors.New("invalid wasm filter configuration")

// Config is the plugin configuration (docs/wasm-filter.md).
type Config struct {
	// Version must be 1.
	Version int `json:"version"`
	// Revision identifies this configuration's content (a digest set by
	// Generate); the filter logs it when it loads one.
	Revision string `json:"revision,omitempty"`
	// Mode is enforce (default) or audit.
	Mode engine.Mode `json:"mode,omitempty"`
	// Answer is what an answer carries beyond the default, as
	// ANSWER_EXTRAS lists it (engine.ParseAnswer); empty: the default.
	Answer string `json:"answer,omitempty"`
	// Issuer and Audience are the agent tokens' iss and aud (MeshGuard's
	// defaults when empty).
	Issuer   string `json:"issuer,omitempty"`
	Audience string `json:"audience,omitempty"`
	// JWKS holds the public keys that verify agent and delegation tokens.
	JWKS json.RawMessage `json:"jwks"`
	// HS256 says MeshGuard also accepts HS256 tokens (JWT_SECRET). The
	// filter never holds that secret: it defers such tokens to MeshGuard.
	HS256 bool `json:"hs256,omitempty"`
	// Agents are the active agents; RevokedAgents the revoked ones (the
	// revocation list), whose tokens are refused and who break any
	// delegation chain they are in.
	Agents        []Agent `json:"agents"`
	RevokedAgents []Agent `json:"revokedAgents,omitempty"`
	// RevokedTokens are the tokens revoked one by one that have not
	// expired: refused as token_revoked, as by MeshGuard.
	RevokedTokens []RevokedToken `json:"revokedTokens,omitempty"`
	// Policies are the policies in force, each in its JSON form
	// (policy.Policy.JSON).
	Policies []json.RawMessage `json:"policies"`
	// Routes are MeshGuard's own route table (ROUTES).
	Routes []engine.Route `json:"routes,omitempty"`
	// Services are the catalogue's services: their hosts, minimum tier
	// and routes give a request its action and tier floor, as the
	// per-route context of MeshGuard's xDS does for ext_authz.
	Services []Service `json:"services,omitempty"`
	// MeshGuard is how the filter reaches MeshGuard's HTTP port.
	MeshGuard Upstream `json:"meshguard"`
	// Audit tunes how decisions are shipped to MeshGuard.
	Audit Audit `json:"audit,omitempty"`
	// TokenCacheEntries bounds the verified-token cache (default 10,000).
	TokenCacheEntries int `json:"tokenCacheEntries,omitempty"`
	// Source, in place of everything above but the version, has the filter
	// fetch its configuration from MeshGuard and refresh it: for proxies
	// whose configuration MeshGuard's xDS does not serve, such as Istio
	// sidecars given the filter by a WasmPlugin.
	Source *Source `json:"source,omitempty"`
}

// Source is where a filter fetches its configuration (GET
// filterprotocol.ConfigPath).
// The configuration fetched is used with this Upstream in place of its own
// meshguard member: the cluster names are the proxy's.
type Source struct {
	Upstream
	// RefreshMs is how often the configuration is fetched again (default
	// 5000); a fetch that fails keeps the configuration in force.
	RefreshMs int `json:"refreshMs,omitempty"`
}

// DefaultRefreshMs is how often a fetched configuration is refreshed.
const DefaultRefreshMs = 5000

// Agent is an active agent as the filter sees it.
type Agent struct {
	ID    string   `json:"id"`
	Name  string   `json:"name"`
	Tier  string   `json:"tier"`
	Tags  []string `json:"tags,omitempty"`
	Hosts []string `json:"hosts,omitempty"`
}

// RevokedToken is a revoked token as the filter knows it: its jti, and its
// exp (Unix seconds), after which the entry may go.
type RevokedToken struct {
	JTI string `json:"jti"`
	Exp int64  `json:"exp"`
}

// Service is a catalogue service as the filter matches requests to it.
type Service struct {
	Name    string          `json:"name"`
	Hosts   []string        `json:"hosts"`
	MinTier string          `json:"minTier,omitempty"`
	Routes  []catalog.Route `json:"routes,omitempty"`
	// Protocol is the agent protocol the service speaks (mcp or a2a), if
	// any: its requests are decided on their bodies (docs/mcp.md).
	Protocol agentproto.Protocol `json:"protocol,omitempty"`
}

// Upstream is MeshGuard as an Envoy cluster.
type Upstream struct {
	// Cluster is the Envoy cluster of MeshGuard's HTTP port.
	Cluster string `json:"cluster"`
	// Authority is the :authority of calls to it (the cluster name if
	// empty).
	Authority string `json:"authority,omitempty"`
	// Token authenticates the filter's calls (audit ingest, deferred
	// checks, configuration fetches); MeshGuard derives it from its admin
	// token. It grants nothing else.
	Token string `json:"token"`
	// TimeoutMs bounds one call (default 1000).
	TimeoutMs int `json:"timeoutMs,omitempty"`
}

// Audit tunes the filter's audit shipping.
type Audit struct {
	// BatchSize is the most records sent in one call (default 100).
	BatchSize int `json:"batchSize,omitempty"`
	// FlushMs is how often queued records are sent (default 250).
	FlushMs int `json:"flushMs,omitempty"`
	// MaxBuffered bounds the records held while MeshGuard is unreachable
	// (default 10,000), and MaxBufferedBytes their size (default 8 MiB);
	// beyond either, records are dropped and counted, and the count is
	// reported with the next batch.
	MaxBuffered      int `json:"maxBuffered,omitempty"`
	MaxBufferedBytes int `json:"maxBufferedBytes,omitempty"`
}

// Defaults.
const (
	DefaultBatchSize   = 100
	DefaultFlushMs     = 250
	DefaultMaxBuffered = 10_000
	// DefaultMaxBufferedBytes bounds the queue's memory per Envoy worker.
	DefaultMaxBufferedBytes = 8 << 20
	DefaultTimeoutMs        = 1000
	// maxBatchSize: a batch is never larger than MeshGuard takes.
	maxBatchSize = filterprotocol.MaxAuditBatch
	maxBuffered  = 1_000_000
)

// Parse reads and checks a configuration. It is strict: an unknown key, a
// wrong type, a missing or unknown version, an agent or service that is
// not valid, or a bound exceeded is an ErrInvalid naming the field. The
// policies, keys and routes are checked when filterdecider.New compiles
// them.
func Parse(data []byte) (*Config, error) {
	if len(data) > MaxBytes {
		return nil, fmt.Errorf("%w: %d bytes, the limit is %d", ErrInvalid, len(data), MaxBytes)
	}
	var c Config
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: data after the JSON object", ErrInvalid)
	}
	if err := c.check(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return &c, nil
}

func (c *Config) check() error {
	if c.Version != Version {
		return fmt.Errorf("version: %d: this filter reads version %d", c.Version, Version)
	}
	if c.Source != nil {
		return c.checkSource()
	}
	if _, err := engine.ParseAnswer(c.Answer); err != nil {
		return fmt.Errorf("answer: %w", err)
	}
	switch {
	case c.Mode != "" && c.Mode != engine.ModeEnforce && c.Mode != engine.ModeAudit:
		return fmt.Errorf("mode: %q: expected enforce or audit", c.Mode)
	case len(c.JWKS) == 0:
		return errors.New("jwks: required")
	case len(c.Agents) > MaxAgents || len(c.RevokedAgents) > MaxAgents:
		return fmt.Errorf("agents: more than %d", MaxAgents)
	case len(c.RevokedTokens) > identity.MaxRevokedTokens:
		return fmt.Errorf("revokedTokens: more than %d", identity.MaxRevokedTokens)
	case len(c.Policies) > MaxPolicies:
		return fmt.Errorf("policies: more than %d", MaxPolicies)
	case len(c.Services) > catalog.MaxServices:
		return fmt.Errorf("services: more than %d", catalog.MaxServices)
	case c.Audit.BatchSize < 0 || c.Audit.BatchSize > maxBatchSize:
		return fmt.Errorf("audit.batchSize: %d: expected 0 (default) to %d", c.Audit.BatchSize, maxBatchSize)
	case c.Audit.FlushMs < 0 || c.Audit.FlushMs > 60_000:
		return fmt.Errorf("audit.flushMs: %d: expected 0 (default) to 60000", c.Audit.FlushMs)
	case c.Audit.MaxBuffered < 0 || c.Audit.MaxBuffered > maxBuffered:
		return fmt.Errorf("audit.maxBuffered: %d: expected 0 (default) to %d", c.Audit.MaxBuffered, maxBuffered)
	case c.Audit.MaxBufferedBytes < 0 || c.Audit.MaxBufferedBytes > 1<<30:
		return fmt.Errorf("audit.maxBufferedBytes: %d: expected 0 (default) to %d", c.Audit.MaxBufferedBytes, 1<<30)
	case c.TokenCacheEntries < 0 || c.TokenCacheEntries > 1_000_000:
		return fmt.Errorf("tokenCacheEntries: %d: expected 0 (default) to 1000000", c.TokenCacheEntries)
	}
	if err := c.MeshGuard.check("meshguard"); err != nil {
		return err
	}
	for i := range c.Agents {
		if err := c.Agents[i].check(); err != nil {
			return fmt.Errorf("agents[%d]: %w", i, err)
		}
	}
	for i := range c.RevokedAgents {
		if err := c.RevokedAgents[i].check(); err != nil {
			return fmt.Errorf("revokedAgents[%d]: %w", i, err)
		}
	}
	for i, r := range c.RevokedTokens {
		if !identity.ValidJTI(r.JTI) || r.Exp <= 0 {
			return fmt.Errorf("revokedTokens[%d]: expected a jti of 1 to 256 visible ASCII characters and an exp in Unix seconds", i)
		}
	}
	return nil
}

// checkSource checks a configuration that only names its source.
func (c *Config) checkSource() error {
	if len(c.JWKS) > 0 || c.Agents != nil || c.RevokedAgents != nil || c.RevokedTokens != nil || c.Policies != nil || c.Routes != nil || c.Services != nil ||
		c.MeshGuard != (Upstream{}) || c.Audit != (Audit{}) || c.Mode != "" || c.Answer != "" || c.Issuer != "" || c.Audience != "" || c.HS256 ||
		c.TokenCacheEntries != 0 || c.Revision != "" {
		return errors.New("source: a configuration that names its source carries nothing else (but its version)")
	}
	if c.Source.RefreshMs < 0 || c.Source.RefreshMs > 3_600_000 {
		return fmt.Errorf("source.refreshMs: %d: expected 0 (default) to 3600000", c.Source.RefreshMs)
	}
	return c.Source.check("source")
}

// RefreshEvery is how often a fetched configuration is refreshed, in
// milliseconds.
func (s *Source) RefreshEvery() int { return orDefault(s.RefreshMs, DefaultRefreshMs) }

func (u *Upstream) check(field string) error {
	switch {
	case u.Cluster == "":
		return fmt.Errorf("%s.cluster: required", field)
	case u.Token == "":
		return fmt.Errorf("%s.token: required", field)
	case u.TimeoutMs < 0 || u.TimeoutMs > 60_000:
		return fmt.Errorf("%s.timeoutMs: %d: expected 0 (default) to 60000", field, u.TimeoutMs)
	}
	return nil
}

func (a *Agent) check() error {
	if !identity.ValidAgentID(a.ID) {
		return fmt.Errorf("id: %q is not an agent id", a.ID)
	}
	if _, err := trust.Parse(a.Tier); err != nil {
		return fmt.Errorf("tier: %w", err)
	}
	return a.Identity(identity.StatusActive).Validate()
}

// Identity is the agent as package identity knows it, with status. The
// tier of an agent Parse accepted always parses; for one it did not, an
// unknown tier reads as untrusted.
func (a *Agent) Identity(status identity.Status) identity.Agent {
	t, _ := trust.Parse(a.Tier) // checked by Parse
	return identity.Agent{ID: a.ID, Name: a.Name, TrustTier: t, Tags: a.Tags, Hosts: a.Hosts, Status: status}
}

// BatchSize, FlushMs and MaxBuffered return the settings with their
// defaults applied.
func (c *Config) BatchSize() int   { return orDefault(c.Audit.BatchSize, DefaultBatchSize) }
func (c *Config) FlushMs() int     { return orDefault(c.Audit.FlushMs, DefaultFlushMs) }
func (c *Config) MaxBuffered() int { return orDefault(c.Audit.MaxBuffered, DefaultMaxBuffered) }

// MaxBufferedBytes is the audit queue's size bound.
func (c *Config) MaxBufferedBytes() int {
	return orDefault(c.Audit.MaxBufferedBytes, DefaultMaxBufferedBytes)
}

// Timeout is how long a call may take, in milliseconds.
func (u *Upstream) Timeout() int { return orDefault(u.TimeoutMs, DefaultTimeoutMs) }

// HostAuthority is the :authority of calls to MeshGuard.
func (u *Upstream) HostAuthority() string {
	if u.Authority != "" {
		return u.Authority
	}
	return u.Cluster
}

func orDefault(v, d int) int {
	if v == 0 {
		return d
	}
	return v
}
