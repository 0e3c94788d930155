// Package filter is MeshGuard's proxy-wasm HTTP filter: it decides each
// request inside Envoy with MeshGuard's own engine (filterdecider), compiled
// from the plugin configuration MeshGuard generates (filterconfig), and asks
// MeshGuard (filterprotocol) only for what the engine cannot do alone (a
// delegation token to mint, a shared rate limit, an HS256 token). It
// records its decisions and ships them to MeshGuard in batches.
//
// One VM runs per Envoy worker thread; each configuration (a new one
// arrives with every agent, key or policy change) gets its own plugin
// context, so requests are decided by one configuration from start to end.
// Every callback is single-threaded.
package filter

import (
	"encoding/binary"
	"errors"
	"strconv"
	"time"

	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm"
	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/types"

	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/filterconfig"
	"github.com/meshguard/meshguard/filterdecider"
	"github.com/meshguard/meshguard/filterprotocol"
)

// NewVM returns the filter's VM context.
func NewVM() types.VMContext { return &vm{} }

// vm is one VM (one per Envoy worker). It outlives the configurations,
// and so does its audit queue.
type vm struct {
	types.DefaultVMContext
	audit *auditQueue
	// pairs is the last upstream header map built, reused (http.go).
	pairs [][2]string
	// set is the last local allow's upstream headers, reused (http.go).
	set []engine.Header
	// lastPeer is the last source.address read, lastPeerIP its IP
	// (sourceAddress).
	lastPeer, lastPeerIP string
}

func (v *vm) NewPluginContext(uint32) types.PluginContext { return &plugin{vm: v} }

// plugin is one configuration in force: given by the host, or, when the
// host gives only a source, fetched from MeshGuard and refreshed.
type plugin struct {
	types.DefaultPluginContext
	vm      *vm
	cfg     *filterconfig.Config
	decider *filterdecider.Decider
	stats   stats
	// done is set once the host retires this configuration.
	done bool
	// tick is the tick period set, in milliseconds.
	tick int
	// now is the time of the request being decided: callbacks never
	// interleave, so the engine's clock reads it.
	now time.Time

	// source, if set, is where the configuration is fetched; ticks counts
	// the ticks since the last fetch, fetching says one is on its way.
	source   *filterconfig.Source
	ticks    int
	fetching bool
}

// OnPluginStart loads the configuration. One that does not parse or
// compile is refused whole: the host then keeps the configuration it had,
// or, with none, fails requests closed (the filter's fail_open is false).
// A configuration that names a source is fetched now; requests are refused
// (503) until it has come.
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
	if err := p.setTick(cfg.FlushMs()); err != nil {
		proxywasm.LogCriticalf("meshguard: setting the tick period: %v", err)
		return false
	}
	if cfg.Source != nil {
		p.source = cfg.Source
		proxywasm.LogInfof("meshguard: fetching the configuration from cluster %s every %d ms", p.source.Cluster, p.source.RefreshEvery())
		p.fetch()
	} else if err := p.load(cfg); err != nil {
		proxywasm.LogCriticalf("meshguard: refusing the plugin configuration: %v", err)
		return false
	}
	return true
}

// setTick makes the tick period ms (the audit flush period).
func (p *plugin) setTick(ms int) error {
	if ms == p.tick {
		return nil
	}
	if err := proxywasm.SetTickPeriodMilliSeconds(uint32(ms)); err != nil {
		return err
	}
	p.tick = ms
	return nil
}

// load compiles cfg and puts it in force.
func (p *plugin) load(cfg *filterconfig.Config) error {
	if p.source != nil {
		cfg.MeshGuard = p.source.Upstream // the proxy's cluster, not MeshGuard's name for it
	}
	q := p.vm.audit
	if q == nil {
		q = &auditQueue{}
	}
	d, err := filterdecider.New(cfg, filterdecider.Options{Now: p.clock, Recorder: q})
	if err != nil {
		return err
	}
	q.configure(cfg, p.stats)
	p.vm.audit = q
	if err := p.setTick(cfg.FlushMs()); err != nil {
		proxywasm.LogWarnf("meshguard: setting the tick period: %v", err)
	}
	p.cfg, p.decider = cfg, d
	proxywasm.LogInfof("meshguard: configuration %s loaded: %d agents, %d revoked, %d policies, %d services, mode %s",
		cfg.Revision, len(cfg.Agents), len(cfg.RevokedAgents), len(cfg.Policies), len(cfg.Services), modeOf(cfg))
	return nil
}

func modeOf(c *filterconfig.Config) string {
	if c.Mode == "" {
		return "enforce"
	}
	return string(c.Mode)
}

// OnTick ships the audit records of the last period and, with a source,
// fetches the configuration again when its refresh period has passed (at
// once while there is none).
func (p *plugin) OnTick() {
	if p.vm.audit != nil && p.cfg != nil {
		p.vm.audit.flush(p)
	}
	if p.source == nil {
		return
	}
	p.ticks++
	if p.decider == nil || p.ticks*p.tick >= p.source.RefreshEvery() {
		p.fetch()
	}
}

// fetch asks MeshGuard for the configuration in force.
func (p *plugin) fetch() {
	if p.fetching {
		return
	}
	up := &p.source.Upstream
	hdrs := callHeaders(up, "GET", filterprotocol.ConfigPath)
	if p.cfg != nil {
		// MeshGuard answers 304, without the document, while it is current.
		hdrs = append(hdrs, [2]string{"if-none-match", strconv.Quote(p.cfg.Revision)})
	}
	if _, err := proxywasm.DispatchHttpCall(up.Cluster, hdrs, nil, nil, uint32(up.Timeout()), p.onConfig); err != nil {
		proxywasm.LogWarnf("meshguard: fetching the configuration from cluster %s: %v", up.Cluster, err)
		return
	}
	p.fetching, p.ticks = true, 0
}

// onConfig loads a fetched configuration unless it is the one in force; a
// failed fetch or a configuration that does not load keeps the one in
// force (and, with none yet, requests stay refused).
func (p *plugin) onConfig(_, bodySize, _ int) {
	p.fetching = false
	status := callStatus()
	if status == "304" {
		return // the configuration in force is current
	}
	if status != "200" {
		proxywasm.LogWarnf("meshguard: fetching the configuration: MeshGuard answered %s; keeping the one in force", status)
		return
	}
	if bodySize > filterconfig.MaxBytes {
		proxywasm.LogWarnf("meshguard: the fetched configuration is larger than %d bytes; keeping the one in force", filterconfig.MaxBytes)
		return
	}
	body, err := proxywasm.GetHttpCallResponseBody(0, bodySize)
	if err != nil {
		proxywasm.LogWarnf("meshguard: reading the fetched configuration: %v", err)
		return
	}
	cfg, err := filterconfig.Parse(body)
	if err == nil && cfg.Source != nil {
		err = errors.New("a fetched configuration may not name a source")
	}
	if err != nil {
		proxywasm.LogErrorf("meshguard: refusing the fetched configuration: %v; keeping the one in force", err)
		return
	}
	if p.cfg != nil && cfg.Revision == p.cfg.Revision {
		return
	}
	if err := p.load(cfg); err != nil {
		proxywasm.LogErrorf("meshguard: refusing the fetched configuration: %v; keeping the one in force", err)
	}
}

// OnPluginDone lets the configuration go. Its queued records stay with the
// VM for the next one to ship; only an answer this configuration waits for
// keeps it (false) until it comes.
func (p *plugin) OnPluginDone() bool {
	if p.vm.audit == nil {
		p.done = true
		return true
	}
	return p.vm.audit.retire(p)
}

// NewHttpContext starts one request.
func (p *plugin) NewHttpContext(uint32) types.HttpContext { return &request{p: p} }

func (p *plugin) clock() time.Time { return p.now }

// requestTime is when Envoy received the request (the request.time
// attribute, nanoseconds since the epoch), so every filter in the chain
// judges tokens at the same instant; the VM's clock when the host has no
// such attribute.
func requestTime() time.Time {
	b, err := getProperty(propRequestTime)
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
