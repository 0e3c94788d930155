package filter_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/types"

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
	for mark, tc := range []struct {
		name            string
		batch, requests int // the batch size; the requests before the first tick
	}{
		{"small batches", 8, 11},
		// The queue keeps records in chunks of 64: the first batch's run
		// of reissued records goes on into the next chunk.
		{"a batch across two chunks", 70, 90},
	} {
		t.Run(tc.name, func(t *testing.T) {
			shipBatches(t, env, api.Client(), api.URL, tc.batch, tc.requests, mark)
		})
	}
}

// shipBatches is one case of TestEnvoyHostBatchesCarryTheirOwnRecords:
// requests made as shipper makes them, batches of batchSize.
func shipBatches(t *testing.T, env *filtertest.Env, c *http.Client, base string, batchSize, requests, mark int) {
	h := startHost(t, compiledHost(t), testConfig(t, env, batchSize, 1000))
	sh := &shipper{t: t, env: env, h: h, mark: mark}
	send := sh.send
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
	send(requests)
	reqs := sh.reqs
	first := tick("first")
	sentFirst := bytes.Clone(first.Body)
	firstRaw := checkShipped(t, "first", first.Body, reqs[:batchSize])

	// MeshGuard is down; two more requests are queued; the retry carries
	// the same records.
	h.reply(first.ID, 503, nil)
	send(2)
	reqs = sh.reqs
	retry := tick("retry")
	sentRetry := bytes.Clone(retry.Body)
	if retryRaw := checkShipped(t, "retry", retry.Body, reqs[:batchSize]); len(retryRaw) == len(firstRaw) {
		for i := range retryRaw {
			if !bytes.Equal(retryRaw[i], firstRaw[i]) {
				t.Errorf("retry: record %d is\n%s\nfirst sent as\n%s", i, retryRaw[i], firstRaw[i])
			}
		}
	}

	// MeshGuard is back: the rest, fewer than a batch, goes at the next
	// tick, into the array of the batch before.
	h.answer(h.p.ID(), c, base)
	rest := tick("rest")
	checkShipped(t, "rest", rest.Body, reqs[batchSize:])
	for _, k := range []struct {
		name string
		call *wasmhost.Callout
		sent []byte
	}{{"first", first, sentFirst}, {"retry", retry, sentRetry}} {
		if !bytes.Equal(k.call.Body, k.sent) {
			t.Errorf("the %s call's body changed after the guest encoded a later batch:\n%s\nwas\n%s", k.name, k.call.Body, k.sent)
		}
	}
	h.answer(h.p.ID(), c, base)

	checkStored(t, env, reqs)
}

// shipper makes the requests of a case through h, each with a trace id
// of its own beginning with the case's mark, in runs of cached allows
// (three a path, /docs and /docs?page=2 in turn) broken by denials, and
// keeps what each request's record must say.
type shipper struct {
	t    *testing.T
	env  *filtertest.Env
	h    *ehost
	mark int
	reqs []shipped
}

func (sh *shipper) send(n int) {
	sh.t.Helper()
	for range n {
		i := len(sh.reqs)
		q := shipped{trace: fmt.Sprintf("%08x%024x", sh.mark+1, 0xa0+i), host: "docs.mesh", path: "/docs", decision: "allow"}
		token := sh.env.OrchT
		switch {
		case i%7 == 2:
			q.host, q.path, q.decision, token = "vault.mesh", "/", "deny", sh.env.MailT
		case i/3%2 == 1:
			q.path = "/docs?page=2"
		}
		o := sh.h.send([][2]string{{":method", "GET"}, {":authority", q.host}, {":path", q.path},
			{"authorization", "Bearer " + token}, {"traceparent", "00-" + q.trace + "-00f067aa0ba902b7-01"}})
		if allowed := o.local == nil && o.action == types.ActionContinue; allowed != (q.decision == "allow") {
			sh.t.Fatalf("request %d (%s%s): allowed %v, want %s (local %+v)", i, q.host, q.path, allowed, q.decision, o.local)
		}
		sh.reqs = append(sh.reqs, q)
	}
	sh.h.done()
}

// checkStored holds MeshGuard's store to one record for each request,
// as the request made it.
func checkStored(t *testing.T, env *filtertest.Env, reqs []shipped) {
	t.Helper()
	for _, q := range reqs {
		page, err := env.F.Store.QueryAudit(context.Background(), store.AuditFilter{TraceID: q.trace, Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Records) != 1 {
			t.Errorf("trace %s: %d records stored, want 1", q.trace, len(page.Records))
			continue
		}
		if r := page.Records[0]; r.Source != "wasm" || r.Host != q.host || r.Path != q.path || r.Decision != q.decision {
			t.Errorf("request %+v: stored (%s %s%s %s)", q, r.Source, r.Host, r.Path, r.Decision)
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

// TestEnvoyHostNewConfigurationWaitsForTheRetiredBatch: a configuration
// retired while its batch is on its way, a new one on the same VM (the
// queue is the VM's) sends nothing while that batch is out, though its
// tick comes and more records are queued; the batch refused (503), the
// new configuration sends the same records again, byte for byte, encoded
// into the array of the retired one's body, whose copy the host keeps
// unchanged; and MeshGuard stores each record once. A second batch of
// the same records while the first is out would be stored twice.
func TestEnvoyHostNewConfigurationWaitsForTheRetiredBatch(t *testing.T) {
	env := filtertest.New(t)
	api := env.API(t)
	config := testConfig(t, env, 8, 1000)
	old := startHost(t, compiledHost(t), config)
	sh := &shipper{t: t, env: env, h: old, mark: 100}
	sh.send(11)
	if err := old.p.Tick(); err != nil {
		t.Fatal(err)
	}
	calls := old.vm.Callouts()
	if len(calls) != 1 {
		t.Fatalf("%d calls after the tick, want 1", len(calls))
	}
	out := calls[0]
	sent := bytes.Clone(out.Body)
	outRaw := checkShipped(t, "retired's", out.Body, sh.reqs[:8])

	p, ok, err := old.vm.NewPlugin(config)
	if err != nil || !ok {
		t.Fatalf("the new configuration: ok %v, %v", ok, err)
	}
	p.SetProperty([]string{"request", "time"}, nanos(filtertest.Now))
	p.SetProperty([]string{"source", "address"}, []byte("10.1.2.3:40000"))
	if err := old.p.Close(); err != nil {
		t.Fatal(err)
	}
	if old.p.Closed() {
		t.Fatal("the retired configuration went with its batch on its way")
	}
	sh.h = &ehost{t: t, vm: old.vm, p: p, ok: ok, streams: map[uint32]*wasmhost.Stream{}}
	sh.send(3)
	if err := p.Tick(); err != nil {
		t.Fatal(err)
	}
	if n := len(old.vm.Callouts()); n != 1 {
		t.Fatalf("%d calls with the retired configuration's batch out, want it alone", n)
	}

	old.reply(out.ID, 503, nil)
	if !old.p.Closed() {
		t.Fatal("the retired configuration stays after its batch's answer")
	}
	if err := p.Tick(); err != nil {
		t.Fatal(err)
	}
	calls = old.vm.Callouts()
	if len(calls) != 1 || calls[0].Plugin != p.ID() {
		t.Fatalf("calls after the refusal: %+v; want one of the new configuration", calls)
	}
	againRaw := checkShipped(t, "again", calls[0].Body, sh.reqs[:8])
	for i := range againRaw {
		if !bytes.Equal(againRaw[i], outRaw[i]) {
			t.Errorf("record %d sent again as\n%s\nfirst as\n%s", i, againRaw[i], outRaw[i])
		}
	}
	if !bytes.Equal(out.Body, sent) {
		t.Errorf("the retired configuration's call body changed after the new one's batch:\n%s\nwas\n%s", out.Body, sent)
	}
	sh.h.answer(p.ID(), api.Client(), api.URL)
	if err := p.Tick(); err != nil {
		t.Fatal(err)
	}
	calls = old.vm.Callouts()
	if len(calls) != 1 {
		t.Fatalf("%d calls for the rest, want 1", len(calls))
	}
	checkShipped(t, "rest", calls[0].Body, sh.reqs[8:])
	sh.h.answer(p.ID(), api.Client(), api.URL)
	checkStored(t, env, sh.reqs)
}
