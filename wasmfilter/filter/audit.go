package filter

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"

	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/filterconfig"
	"github.com/meshguard/meshguard/filterprotocol"
)

// auditQueue holds the records of the filter's own decisions until
// MeshGuard has them. There is one per VM (per Envoy worker), shared by the
// configurations that come and go, so records outlive the configuration
// that made them.
//
// It is bounded, in records and in bytes: a record that finds it full is
// dropped and counted, and the count goes to MeshGuard with the next batch
// (MeshGuard logs it and exports it as a metric), so a gap in the trail is
// always visible. The decision itself is not held up: the filter cannot
// wait on the network for every request. Records leave at each tick
// (FlushMs) and, while a backlog lasts, as soon as MeshGuard has taken the
// previous batch.
//
// Its records are kept in fixed chunks (chunkLen records each), written
// in place and never moved: the queue does not grow one array by copying
// it (a wasm VM's memory never shrinks, and at MaxBuffered the array was
// megabytes), and a chunk shipped is kept for reuse. The records of a
// batch on its way stay where they are until it is settled.
type auditQueue struct {
	cfg     *filterconfig.Config // the newest configuration's settings
	stats   stats
	chunks  []*chunk // chunks[0][head] is the oldest record
	head    int
	n       int    // records held
	spare   *chunk // a shipped chunk, cleared, for the next
	bytes   int    // the records' approximate size
	dropped uint64 // since the last batch MeshGuard accepted

	sending  bool    // a batch is on its way
	sender   *plugin // the configuration that sent it
	sentN    int     // its records (the queue's head)
	sentDrop uint64  // the dropped count it reports
	failing  bool    // the last call failed: log once per outage
	body     []byte  // the last batch's encoding, reused for the next
}

// chunkLen is the records in a chunk: a batch's (DefaultBatchSize) in
// two, and 34 KB of memory.
const chunkLen = 64

type chunk [chunkLen]audit.Record

// configure takes a new configuration's settings; the records stay.
func (q *auditQueue) configure(cfg *filterconfig.Config, s stats) { q.cfg, q.stats = cfg, s }

// Write takes the record of a local decision (engine.Recorder).
func (q *auditQueue) Write(_ context.Context, r audit.Record) error {
	size := recordSize(&r)
	if q.n >= q.cfg.MaxBuffered() || q.bytes+size > q.cfg.MaxBufferedBytes() {
		q.dropped++
		q.stats.dropped.Increment(1)
		return nil
	}
	at := q.head + q.n
	if at/chunkLen == len(q.chunks) {
		c := q.spare
		if c == nil {
			c = new(chunk)
		}
		q.spare = nil
		q.chunks = append(q.chunks, c)
	}
	q.chunks[at/chunkLen][at%chunkLen] = r
	q.n++
	q.bytes += size
	return nil
}

// at is the i-th record held, the oldest first.
func (q *auditQueue) at(i int) *audit.Record {
	i += q.head
	return &q.chunks[i/chunkLen][i%chunkLen]
}

// batch is the first n records held, as the runs of chunks they are in
// (no copy).
func (q *auditQueue) batch(n int) [][]audit.Record {
	var runs [][]audit.Record
	for i, from := 0, q.head; n > 0; i, from = i+1, 0 {
		k := min(n, chunkLen-from)
		runs = append(runs, q.chunks[i][from:from+k])
		n -= k
	}
	return runs
}

// encodeBatch is the JSON of filterprotocol.AuditBatch{revision, dropped,
// recs}, each record written by its hand-written canonical encoder
// (audit.Record.Canonical) instead of encoding/json: reflection over a
// record's thirty fields is most of what shipping costs in wasm, where
// it runs ≈ 18× slower than native (docs/performance.md). MeshGuard
// decodes both alike: the canonical form has every field json.Marshal
// writes but the two hashes, which MeshGuard clears anyway. A record the
// canonical encoder refuses is encoded by encoding/json, as before. The
// records of a batch go through one audit.RunEncoder: most are copies of a
// cached decision's record (engine.Reissue), whose shared members it
// copies from the record before instead of writing them again.
// The records come in runs (auditQueue.batch), written in order, into b
// (its bytes overwritten, its array reused if large enough).
func encodeBatch(b []byte, revision string, dropped uint64, runs ...[]audit.Record) ([]byte, error) {
	n := 0
	for _, recs := range runs {
		n += len(recs)
	}
	b = slices.Grow(b[:0], 64+700*n)
	b = append(b, '{')
	if revision != "" {
		rev, err := json.Marshal(revision)
		if err != nil {
			return nil, fmt.Errorf("encoding the revision: %w", err)
		}
		b = append(append(append(b, `"revision":`...), rev...), ',')
	}
	b = strconv.AppendUint(append(b, `"dropped":`...), dropped, 10)
	b = append(b, `,"records":[`...)
	var enc audit.RunEncoder
	first := true
	for _, recs := range runs {
		for i := range recs {
			if !first {
				b = append(b, ',')
			}
			first = false
			r := &recs[i]
			if r.Context != nil && len(r.Context) == 0 {
				// encoding/json omits an empty context; the canonical form
				// would write {}, which MeshGuard would then store.
				r.Context = nil
			}
			var err error
			if b, err = enc.Append(b, r); err != nil {
				c, err := json.Marshal(r)
				if err != nil {
					return nil, fmt.Errorf("encoding audit record %s: %w", r.DecisionID, err)
				}
				b = append(b, c...)
			}
		}
	}
	return append(b, "]}"...), nil
}

// recordSize approximates a record's memory and encoded size.
func recordSize(r *audit.Record) int {
	n := 512 + len(r.Action) + len(r.Resource) + len(r.Path) + len(r.Host) + len(r.AgentName) + 24*len(r.Chain)
	if c := r.Call; c != nil {
		// The arguments are held until the record is shipped.
		n += 256 + len(c.Method) + len(c.Name) + len(c.JSONRPCID) + len(c.SessionID) + len(c.TaskID) + len(c.ContextID) + c.HeldBytes()
	}
	for k, v := range r.Context {
		n += len(k) + 64
		if s, ok := v.(string); ok {
			n += len(s)
		}
	}
	return n
}

// flush sends the next batch through p's configuration, unless one is on
// its way. It runs only in a plugin's own callbacks (the tick, an answer):
// a call made while deciding a request would belong to that request, and
// its answer would be lost with it if the request ended first.
func (q *auditQueue) flush(p *plugin) {
	if q.sending || p.done || q.n == 0 && q.dropped == 0 {
		return
	}
	n := min(q.n, q.cfg.BatchSize())
	for i := range n {
		// The arguments' digest is computed here, off the decision's
		// path; the arguments themselves never leave the proxy.
		if r := q.at(i); r.Call != nil {
			if err := r.Call.DigestArguments(); err != nil {
				proxywasm.LogErrorf("meshguard: digesting the arguments of audit record %s: %v", r.DecisionID, err)
			}
		}
	}
	body, err := encodeBatch(q.body, q.cfg.Revision, q.dropped, q.batch(n)...)
	if err != nil {
		// A record that cannot be encoded would block the queue for good.
		proxywasm.LogErrorf("meshguard: encoding %d audit records: %v; dropping them", n, err)
		q.drop(n)
		return
	}
	up := &p.cfg.MeshGuard
	if _, err := proxywasm.DispatchHttpCall(up.Cluster, callHeaders(up, "POST", filterprotocol.AuditPath), body, nil, uint32(up.Timeout()), q.onAnswer); err != nil {
		q.failed("dispatching to cluster " + up.Cluster + ": " + err.Error())
		return
	}
	q.sending, q.sender, q.sentN, q.sentDrop = true, p, n, q.dropped
	q.keepBody(body)
}

// keepBody keeps a dispatched batch's body for the next batch to be
// encoded into, if it is not too large to keep. The host copied it (Envoy,
// as proxy-wasm-cpp-host, keeps its own copy of a call's body). A new
// 70 KB array a batch was a tenth of a cached allow's CPU in wasm
// (docs/performance.md).
func (q *auditQueue) keepBody(body []byte) {
	if cap(body) <= maxKeptBody {
		q.body = body
	} else {
		q.body = nil
	}
}

// maxKeptBody bounds the batch body the queue keeps for the next batch:
// a batch of large records (MCP arguments) is not held for good.
const maxKeptBody = 256 << 10

// onAnswer settles the batch in flight. Taken, it leaves the queue.
// Refused as bad (a 4xx other than 429), it will never be taken: it is
// dropped and counted, not retried forever in front of every later record.
// Lost or refused for now (no answer, 429, 5xx), it stays for the next tick.
func (q *auditQueue) onAnswer(_, _, _ int) {
	n, sender := q.sentN, q.sender
	q.sending, q.sender, q.sentN = false, nil, 0
	status := callStatus()
	code, _ := strconv.Atoi(status)
	switch {
	case code == 200 || code == 204:
		if q.failing {
			proxywasm.LogInfo("meshguard: audit records reach MeshGuard again")
			q.failing = false
		}
		q.shift(n)
		q.stats.shipped.Increment(uint64(n))
		q.dropped -= q.sentDrop
		if q.n >= q.cfg.BatchSize() {
			q.flush(sender)
		}
	case code >= 400 && code < 500 && code != 429:
		// The refused batch's dropped count did not arrive either: it stays.
		proxywasm.LogErrorf("meshguard: MeshGuard refused a batch of %d audit records (%s); dropping them", n, status)
		q.drop(n)
	default:
		q.failed("MeshGuard answered " + status)
	}
	if sender != nil && sender.done {
		proxywasm.PluginDone() // the answer it waited for has come
	}
}

func (q *auditQueue) failed(why string) {
	if !q.failing {
		proxywasm.LogWarnf("meshguard: audit records cannot be shipped (%s); keeping up to %d and retrying", why, q.cfg.MaxBuffered())
		q.failing = true
	}
}

// drop removes the first n records and counts them as dropped.
func (q *auditQueue) drop(n int) {
	q.shift(n)
	q.dropped += uint64(n)
	q.stats.dropped.Increment(uint64(n))
}

// shift removes the first n records. A chunk left empty goes (the newest
// chunk emptied is kept as the spare); the records are cleared, so
// nothing they held stays reachable.
func (q *auditQueue) shift(n int) {
	for i := range n {
		r := q.at(i)
		q.bytes -= recordSize(r)
		*r = audit.Record{}
	}
	q.head += n
	q.n -= n
	gone := q.head / chunkLen
	if q.n == 0 && len(q.chunks) > 0 {
		gone = len(q.chunks) // the last chunk too: the next record starts one afresh
	}
	if gone > 0 {
		q.spare = q.chunks[gone-1]
		rest := copy(q.chunks, q.chunks[gone:])
		clear(q.chunks[rest:])
		q.chunks = q.chunks[:rest]
		q.head -= gone * chunkLen
		if q.n == 0 {
			q.head = 0
		}
	}
}

// retire is a plugin's OnPluginDone: the queue stays with the VM for the
// next configuration to ship; only a batch this plugin has on its way is
// waited for (false), since its answer comes to this plugin.
func (q *auditQueue) retire(p *plugin) bool {
	p.done = true
	return !q.sending || q.sender != p
}
