package filter_test

import (
	"testing"

	"github.com/meshguard/meshguard/filterconfig/filtertest"
)

// TestSourceAddressFollowsThePeer: the filter keeps the last
// source.address it parsed (sourceAddress); each request is still decided
// and recorded with its own peer's IP, in the VM's own order of peers,
// repeats and changes, and an address the host gives unparsed is recorded
// as none, not as the last peer's.
func TestSourceAddressFollowsThePeer(t *testing.T) {
	peers := []struct{ given, want string }{
		{"10.1.2.3:40000", "10.1.2.3"},
		{"10.1.2.3:40000", "10.1.2.3"},
		{"10.9.9.9:1234", "10.9.9.9"},
		{"10.9.9.8:1234", "10.9.9.8"},
		{"[2001:db8::1]:443", "2001:db8::1"},
		{"[::ffff:10.1.2.3]:80", "10.1.2.3"},
		{"not an address", ""},
		{"10.9.9.9:1234", "10.9.9.9"},
		{"10.9.9.9", "10.9.9.9"},
		{"10.9.9.8", "10.9.9.8"},
	}
	for _, run := range isolated(t) {
		t.Run(run.name, func(t *testing.T) {
			env := filtertest.New(t)
			allow := [][2]string{{":method", "GET"}, {":authority", "docs.mesh"}, {":path", "/docs"}, {"authorization", "Bearer " + env.OrchT}}
			e := start(t, run.vm, testConfig(t, env, len(peers), 2*len(peers)))
			for _, p := range peers {
				if err := e.host.SetProperty([]string{"source", "address"}, []byte(p.given)); err != nil {
					t.Fatal(err)
				}
				e.send(allow)
			}
			e.host.Tick()
			calls := e.rootCallouts()
			if len(calls) != 1 {
				t.Fatalf("%d batches, want 1", len(calls))
			}
			b := batchOf(t, calls[0].Body)
			if len(b.Records) != len(peers) {
				t.Fatalf("%d records, want %d", len(b.Records), len(peers))
			}
			for i, p := range peers {
				if got := b.Records[i].SourceAddress; got != p.want {
					t.Errorf("request %d from %q recorded from %q, want %q", i, p.given, got, p.want)
				}
			}
		})
	}
}
