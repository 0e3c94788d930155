package filter

import (
	"context"
	"encoding/json"

	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/filterconfig"
)

// auditQueue holds the records of the filter's own decisions until
// MeshGuard has them. It is bounded: a record that finds it full is
// dropped and counted, and the count goes to MeshGuard with the next batch
// (MeshGuard logs it and exports it as a metric), so a gap in the trail is
// always visible. The decision itself is not held up: the filter cannot
// wait on the network for every request. Records leave at each tick
// (FlushMs) and, while a backlog lasts, as soon as MeshGuard has taken the
// previous batch.
type auditQueue struct {
	p        *plugin
	cfg      *filterconfig.Config
	records  []audit.Record
	dropped  uint64 // since the last batch MeshGuard accepted
	sending  bool   // a batch is on its way
	sentN    int    // its records (the queue's head)
	sentDrop uint64 // the dropped count it reports
	failing  bool   // the last call failed: log once per outage
	done     bool   // the plugin is going: tell the host when empty
}

func newAuditQueue(p *plugin, cfg *filterconfig.Config) *auditQueue {
	return &auditQueue{p: p, cfg: cfg}
}

// configure takes a new configuration's settings (a fetched configuration
// replaces the one in force; the queue and what it holds stay).
func (q *auditQueue) configure(cfg *filterconfig.Config) { q.cfg = cfg }

// Write takes the record of a local decision (engine.Recorder).
func (q *auditQueue) Write(_ context.Context, r audit.Record) error {
	if len(q.records) >= q.cfg.MaxBuffered() {
		q.dropped++
		q.p.stats.dropped.Increment(1)
		return nil
	}
	q.records = append(q.records, r)
	return nil
}

// flush sends the next batch, unless one is on its way. It runs only in
// the plugin's own callbacks (the tick, an answer): a call made while
// deciding a request would belong to that request, and its answer would be
// lost with it if the request ended first.
func (q *auditQueue) flush() {
	if q.sending || len(q.records) == 0 && q.dropped == 0 {
		return
	}
	n := min(len(q.records), q.cfg.BatchSize())
	body, err := json.Marshal(filterconfig.AuditBatch{Revision: q.cfg.Revision, Dropped: q.dropped, Records: q.records[:n]})
	if err != nil {
		// A record that cannot be encoded would block the queue for good.
		proxywasm.LogErrorf("meshguard: encoding %d audit records: %v; dropping them", n, err)
		q.shift(n)
		q.dropped += uint64(n)
		return
	}
	up := &q.cfg.MeshGuard
	if _, err := proxywasm.DispatchHttpCall(up.Cluster, callHeaders(up, "POST", filterconfig.AuditPath), body, nil, uint32(up.Timeout()), q.onAnswer); err != nil {
		q.failed("dispatching to cluster " + up.Cluster + ": " + err.Error())
		return
	}
	q.sending, q.sentN, q.sentDrop = true, n, q.dropped
}

// onAnswer settles the batch in flight: accepted, it leaves the queue;
// refused or lost, it stays for the next tick.
func (q *auditQueue) onAnswer(_, _, _ int) {
	n := q.sentN
	q.sending, q.sentN = false, 0
	if status := callStatus(); status != "200" && status != "204" {
		q.failed("MeshGuard answered " + status)
		q.finishIfDone()
		return
	}
	if q.failing {
		proxywasm.LogInfo("meshguard: audit records reach MeshGuard again")
		q.failing = false
	}
	if n > 0 {
		q.shift(n)
		q.p.stats.shipped.Increment(uint64(n))
	}
	q.dropped -= q.sentDrop
	if len(q.records) >= q.cfg.BatchSize() || q.done && len(q.records) > 0 {
		q.flush()
	}
	q.finishIfDone()
}

func (q *auditQueue) failed(why string) {
	if !q.failing {
		proxywasm.LogWarnf("meshguard: audit records cannot be shipped (%s); keeping up to %d and retrying", why, q.cfg.MaxBuffered())
		q.failing = true
	}
}

// shift removes the first n records, letting the rest move down so the
// queue's array does not grow without bound.
func (q *auditQueue) shift(n int) {
	rest := copy(q.records, q.records[n:])
	clear(q.records[rest:])
	q.records = q.records[:rest]
}

// finish is OnPluginDone: true when nothing is left to ship; otherwise it
// ships and tells the host once done.
func (q *auditQueue) finish() bool {
	if len(q.records) == 0 && q.dropped == 0 {
		return true
	}
	q.done = true
	q.flush()
	if !q.sending {
		// Nothing could be sent: waiting would keep the plugin forever.
		proxywasm.LogWarnf("meshguard: %d audit records not shipped before the configuration was replaced", len(q.records))
		q.done = false
		return true
	}
	return false
}

func (q *auditQueue) finishIfDone() {
	if q.done && !q.sending && (len(q.records) == 0 && q.dropped == 0 || q.failing) {
		// Failing at shutdown: what is left is lost, and said so.
		if len(q.records) > 0 {
			proxywasm.LogWarnf("meshguard: %d audit records not shipped before the configuration was replaced", len(q.records))
		}
		q.done = false
		proxywasm.PluginDone()
	}
}
