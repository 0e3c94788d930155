// Package filter is MeshGuard's proxy-wasm HTTP filter: it decides each
// request inside Envoy with MeshGuard's own engine (filterconfig), compiled
// from the plugin configuration MeshGuard generates, and asks MeshGuard
// only for what the engine cannot do alone (a delegation token to mint, a
// shared rate limit, an HS256 token). It records its decisions and ships
// them to MeshGuard in batches.
//
// One VM runs per Envoy worker thread; each configuration (a new one
// arrives with every agent, key or policy change) gets its own plugin
// context, so requests are decided by one configuration from start to end.
// Every callback is single-threaded.
package filter

import (
	"encoding/binary"
	"time"

	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm"
	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/types"

	"github.com/meshguard/meshguard/filterconfig"
)

// NewVM returns the filter's VM context.
func NewVM() types.VMContext { return &vm{} }

type vm struct{ types.DefaultVMContext }

func (*vm) NewPluginContext(uint32) types.PluginContext { return &plugin{} }

// plugin is one configuration in force.
type plugin struct {
	types.DefaultPluginContext
	cfg     *filterconfig.Config
	decider *filterconfig.Decider
	audit   *auditQueue
	stats   stats
	// now is the time of the request being decided: callbacks never
	// interleave, so the engine's clock reads it.
	now time.Time
}

// OnPluginStart loads the configuration. One that does not parse or
// compile is refused whole: the host then keeps the configuration it had,
// or, with none, fails requests closed (the filter's fail_open is false).
func (p *plugin) OnPluginStart(int) types.OnPluginStartStatus {
	p.stats = newStats()
	data, err := proxywasm.GetPluginConfiguration()
	if err != nil {
		proxywasm.LogCriticalf("meshguard: reading the plugin configuration: %v", err)
		return false
	}
	cfg, err := filterconfig.Parse(data)
	if err != nil {
		proxywasm.LogCriticalf("meshguard: refusing the plugin configuration: %v", err)
		return false
	}
	p.audit = newAuditQueue(p, cfg)
	d, err := filterconfig.New(cfg, filterconfig.Options{Now: p.clock, Recorder: p.audit})
	if err != nil {
		proxywasm.LogCriticalf("meshguard: refusing the plugin configuration: %v", err)
		return false
	}
	p.cfg, p.decider = cfg, d
	if err := proxywasm.SetTickPeriodMilliSeconds(uint32(cfg.FlushMs())); err != nil {
		proxywasm.LogCriticalf("meshguard: setting the audit flush period: %v", err)
		return false
	}
	proxywasm.LogInfof("meshguard: configuration %s loaded: %d agents, %d revoked, %d policies, %d services, mode %s",
		cfg.Revision, len(cfg.Agents), len(cfg.RevokedAgents), len(cfg.Policies), len(cfg.Services), modeOf(cfg))
	return true
}

func modeOf(c *filterconfig.Config) string {
	if c.Mode == "" {
		return "enforce"
	}
	return string(c.Mode)
}

// OnTick ships the audit records of the last period.
func (p *plugin) OnTick() { p.audit.flush() }

// OnPluginDone ships what is left before the configuration goes; the host
// waits (false) until the last batch is answered.
func (p *plugin) OnPluginDone() bool {
	if p.audit == nil {
		return true
	}
	return p.audit.finish()
}

// NewHttpContext starts one request.
func (p *plugin) NewHttpContext(uint32) types.HttpContext { return &request{p: p} }

func (p *plugin) clock() time.Time { return p.now }

// requestTime is when Envoy received the request (the request.time
// attribute, nanoseconds since the epoch), so every filter in the chain
// judges tokens at the same instant; the VM's clock when the host has no
// such attribute.
func requestTime() time.Time {
	b, err := proxywasm.GetProperty([]string{"request", "time"})
	if err == nil && len(b) == 8 {
		return time.Unix(0, int64(binary.LittleEndian.Uint64(b))).UTC()
	}
	return time.Now()
}

// stats are the filter's Envoy counters (meshguard.wasm.*).
type stats struct {
	allow, deny, deferred, failed, dropped, shipped proxywasm.MetricCounter
}

func newStats() stats {
	return stats{
		allow:    proxywasm.DefineCounterMetric("meshguard.wasm.allow"),
		deny:     proxywasm.DefineCounterMetric("meshguard.wasm.deny"),
		deferred: proxywasm.DefineCounterMetric("meshguard.wasm.deferred"),
		failed:   proxywasm.DefineCounterMetric("meshguard.wasm.failed"),
		dropped:  proxywasm.DefineCounterMetric("meshguard.wasm.audit_dropped"),
		shipped:  proxywasm.DefineCounterMetric("meshguard.wasm.audit_shipped"),
	}
}
