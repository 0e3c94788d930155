package filter_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/types"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/filterconfig/filtertest"
	"github.com/meshguard/meshguard/store"
	"github.com/meshguard/meshguard/wasmfilter/wasmhost"
)

// shipped is one request of TestEnvoyHostBatchesCarryTheirOwnRecords:
// what its audit record must say.
type shipped struct{ trace, host, path, decision string }

// TestEnvoyHostBatchesCarryTheirOwnRecords ships, from the compiled filter
// under wasmhost, runs of cached allows (reissued records, whose shared
// members the batch encoder copies from the record before) broken by
// other paths and by denials, each request with a trace id of its own,
// and holds every record to the request that made it:
//   - each record of a batch is its request's (trace, host, path,
//     decision), in order, with ids of its own: no member copied from
//     the record before that differs;
//   - a batch refused (503) is sent again with the same records, byte for
//     byte, though more were queued meanwhile;
//   - a shorter batch after a longer one (encoded into its array) holds
//     only its own records, and the bodies the host took for the calls
//     before are unchanged by it (the filter reuses a sent body's array,
//     keepBody: a host keeping a view of guest memory, not a copy as
//     Envoy's, would ship the later batch's bytes);
//   - MeshGuard's real API stores each request's record once, as sent.
func TestEnvoyHostBatchesCarryTheirOwnRecords(t *testing.T) {
	env := filtertest.New(t)
	api := env.API(t)
	const batchSize = 8
	h := startHost(t, compiledHost(t), testConfig(t, env, batchSize, 64))
	var reqs []shipped
	send := func(host, path, token, decision string) {
		t.Helper()
		trace := fmt.Sprintf("%032x", 0xa0+len(reqs))
		o := h.send([][2]string{{":method", "GET"}, {":authority", host}, {":path", path},
			{"authorization", "Bearer " + token}, {"traceparent", "00-" + trace + "-00f067aa0ba902b7-01"}})
		if allowed := o.local == nil && o.action == types.ActionContinue; allowed != (decision == "allow") {
			t.Fatalf("request %d (%s%s): allowed %v, want %s (local %+v)", len(reqs), host, path, allowed, decision, o.local)
		}
		reqs = append(reqs, shipped{trace, host, path, decision})
	}
	allow := func(path string) { send("docs.mesh", path, env.OrchT, "allow") }
	deny := func() { send("vault.mesh", "/", env.MailT, "deny") }
	allow("/docs")
	allow("/docs")
	deny()
	allow("/docs")
	allow("/docs?page=2")
	allow("/docs?page=2")
	allow("/docs")
	deny()
	allow("/docs?page=2")
	allow("/docs")
	allow("/docs")
	h.done()

	// tick flushes and returns the one call it makes.
	tick := func(step string) *wasmhost.Callout {
		t.Helper()
		if err := h.p.Tick(); err != nil {
			t.Fatal(err)
		}
		calls := h.callouts(h.p.ID())
		if len(calls) != 1 {
			t.Fatalf("%s: %d calls, want 1", step, len(calls))
		}
		return calls[0]
	}
	first := tick("first")
	sentFirst := bytes.Clone(first.Body)
	firstRaw := checkShipped(t, "first", first.Body, reqs[:batchSize])

	// MeshGuard is down; two more requests are queued; the retry carries
	// the same eight records.
	h.reply(first.ID, 503, nil)
	allow("/docs")
	deny()
	h.done()
	retry := tick("retry")
	if retryRaw := checkShipped(t, "retry", retry.Body, reqs[:batchSize]); len(retryRaw) == len(firstRaw) {
		for i := range retryRaw {
			if !bytes.Equal(retryRaw[i], firstRaw[i]) {
				t.Errorf("retry: record %d is\n%s\nfirst sent as\n%s", i, retryRaw[i], firstRaw[i])
			}
		}
	}
	sentRetry := bytes.Clone(retry.Body)

	// MeshGuard is back: the rest (5 records) goes at the next tick, into
	// the array of the 8 before.
	h.answer(h.p.ID(), api.Client(), api.URL)
	rest := tick("rest")
	checkShipped(t, "rest", rest.Body, reqs[batchSize:])
	for _, c := range []struct {
		name string
		call *wasmhost.Callout
		sent []byte
	}{{"first", first, sentFirst}, {"retry", retry, sentRetry}} {
		if !bytes.Equal(c.call.Body, c.sent) {
			t.Errorf("the %s call's body changed after the guest encoded a later batch:\n%s\nwas\n%s", c.name, c.call.Body, c.sent)
		}
	}
	h.answer(h.p.ID(), api.Client(), api.URL)

	page, err := env.F.Store.QueryAudit(context.Background(), store.AuditFilter{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	byTrace := map[string]audit.Record{}
	for _, r := range page.Records {
		if r.Source != "wasm" {
			continue
		}
		if _, twice := byTrace[r.TraceID]; twice {
			t.Errorf("trace %s stored twice", r.TraceID)
		}
		byTrace[r.TraceID] = r
	}
	if len(byTrace) != len(reqs) {
		t.Errorf("%d wasm records stored, want %d", len(byTrace), len(reqs))
	}
	for i, q := range reqs {
		r, ok := byTrace[q.trace]
		if !ok || r.Host != q.host || r.Path != q.path || r.Decision != q.decision {
			t.Errorf("request %d (%+v): stored (%s%s %s), found %v", i, q, r.Host, r.Path, r.Decision, ok)
		}
	}
}

// checkShipped holds a batch body to the requests it must carry, in
// order, and returns its records as sent.
func checkShipped(t *testing.T, step string, body []byte, want []shipped) []json.RawMessage {
	t.Helper()
	var raw struct{ Records []json.RawMessage }
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatalf("%s: the body is not a batch (%v):\n%s", step, err, body)
	}
	b := batchOf(t, body)
	if len(b.Records) != len(want) {
		t.Fatalf("%s: %d records, want %d:\n%s", step, len(b.Records), len(want), body)
	}
	ids := map[string]bool{}
	for i, r := range b.Records {
		q := want[i]
		if r.TraceID != q.trace || r.Host != q.host || r.Path != q.path || r.Decision != q.decision || r.Source != "wasm" {
			t.Errorf("%s: record %d is (%s %s%s %s %s), want its request's (%s %s%s %s wasm)", step, i,
				r.TraceID, r.Host, r.Path, r.Decision, r.Source, q.trace, q.host, q.path, q.decision)
		}
		for _, id := range []string{r.ID, r.DecisionID, r.SpanID} {
			if id == "" || ids[id] {
				t.Errorf("%s: record %d: id %q empty or another record's", step, i, id)
			}
			ids[id] = true
		}
	}
	return raw.Records
}
