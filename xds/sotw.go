package xds

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"google.golang.org/protobuf/types/known/anypb"
)

// sharedCache answers state-of-the-world watches from resources encoded
// once per version and shared by every stream; delta watches and fetches
// go to the snapshot cache it embeds, which Update keeps at the same
// version.
//
// go-control-plane's snapshot cache encodes every resource again for each
// response: with a thousand streams, a push encoded the catalogue a
// thousand times per type, and that garbage set the server's peak memory
// (docs/performance.md, "Memory"). It answers as the snapshot cache does:
// a request whose version is the current one waits, unless it names (or,
// wildcard, lacks) a resource it was not sent; a named request gets the
// resources it names.
type sharedCache struct {
	cachev3.SnapshotCache

	mu      sync.Mutex
	current *encoded // nil until the first Update
	watches map[*sotwWatch]struct{}
}

type sotwWatch struct {
	req *cachev3.Request
	sub cachev3.Subscription
	out chan cachev3.Response
}

// encoded is one version of the resources, each encoded once.
type encoded struct {
	version string
	types   map[string]*typeEncoded
}

// typeEncoded are the resources of one type, in name order.
type typeEncoded struct {
	names    []string
	anys     []*anypb.Any
	returned map[string]string // every name to the version
	wire     []byte            // the whole-type response without a nonce (wire.go); nil if not wired
	sets     namedSets         // responses to named requests (named.go)
}

func newSharedCache(snap cachev3.SnapshotCache) *sharedCache {
	return &sharedCache{SnapshotCache: snap, watches: map[*sotwWatch]struct{}{}}
}

// encode encodes resources (by type URL) as version.
func encode(version string, resources map[string][]types.Resource) (*encoded, error) {
	e := &encoded{version: version, types: make(map[string]*typeEncoded, len(resources))}
	for typeURL, rs := range resources {
		sorted := slices.Clone(rs)
		slices.SortFunc(sorted, func(a, b types.Resource) int {
			return cmpString(cachev3.GetResourceName(a), cachev3.GetResourceName(b))
		})
		t := &typeEncoded{returned: make(map[string]string, len(rs))}
		for _, r := range sorted {
			b, err := cachev3.MarshalResource(r)
			if err != nil {
				return nil, fmt.Errorf("xds: encoding %s: %w", cachev3.GetResourceName(r), err)
			}
			name := cachev3.GetResourceName(r)
			t.names = append(t.names, name)
			t.anys = append(t.anys, &anypb.Any{TypeUrl: typeURL, Value: b})
			t.returned[name] = version
		}
		if wired(typeURL) {
			var err error
			if t.wire, err = wireEncode(version, typeURL, t.anys); err != nil {
				return nil, err
			}
		}
		e.types[typeURL] = t
	}
	return e, nil
}

// wire is the shared encoding of r without its nonce, if r is the current
// version's whole-type response or one of its shared named responses, and
// nothing else (nil if not).
func (c *sharedCache) wire(r *discoveryv3.DiscoveryResponse) []byte {
	c.mu.Lock()
	e := c.current
	c.mu.Unlock()
	if e == nil || r.GetVersionInfo() != e.version {
		return nil
	}
	t := e.types[r.GetTypeUrl()]
	if t == nil || t.wire == nil || len(r.Resources) == 0 {
		return nil
	}
	if r.ControlPlane != nil || r.Canary || len(r.ProtoReflect().GetUnknown()) > 0 {
		return nil
	}
	if len(r.Resources) == len(t.anys) && &r.Resources[0] == &t.anys[0] {
		return t.wire
	}
	return t.namedWire(e.version, r.GetTypeUrl(), r.Resources)
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// set makes e the current version and answers every waiting watch whose
// version it is not.
func (c *sharedCache) set(e *encoded) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.current = e
	for w := range c.watches {
		if w.req.GetVersionInfo() != e.versionOf(w.req.GetTypeUrl()) {
			// The channel has room for one response per type, and a
			// stream has one watch per type open: this never blocks.
			w.out <- e.response(w.req)
			delete(c.watches, w)
		}
	}
}

// CreateWatch answers req now if it lacks the current version or a
// resource it asks for, else when the version changes.
func (c *sharedCache) CreateWatch(req *cachev3.Request, sub cachev3.Subscription, out chan cachev3.Response) (func(), error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.current; e != nil && (req.GetVersionInfo() != e.versionOf(req.GetTypeUrl()) || e.unsent(req.GetTypeUrl(), sub)) {
		out <- e.response(req)
		return func() {}, nil
	}
	w := &sotwWatch{req: req, sub: sub, out: out}
	c.watches[w] = struct{}{}
	return func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		delete(c.watches, w)
	}, nil
}

// sotwWatches counts the watches waiting.
func (c *sharedCache) sotwWatches() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.watches)
}

// versionOf is the version of a type's resources: none for a type not
// served (secrets, say), whose requests wait, as in the snapshot cache.
func (e *encoded) versionOf(typeURL string) string {
	if e.types[typeURL] == nil {
		return ""
	}
	return e.version
}

// unsent says whether sub asks for a resource of the type it was not sent.
func (e *encoded) unsent(typeURL string, sub cachev3.Subscription) bool {
	t := e.types[typeURL]
	if t == nil {
		return false
	}
	known := sub.ReturnedResources()
	if sub.IsWildcard() {
		for _, name := range t.names {
			if _, ok := known[name]; !ok {
				return true
			}
		}
		return false
	}
	for name := range sub.SubscribedResources() {
		if _, ok := known[name]; !ok {
			if _, found := slices.BinarySearch(t.names, name); found {
				return true
			}
		}
	}
	return false
}

// response is e for req: every resource of its type, or those it names.
func (e *encoded) response(req *cachev3.Request) *sharedResponse {
	r := &sharedResponse{req: req, version: e.versionOf(req.GetTypeUrl())}
	t := e.types[req.GetTypeUrl()]
	if t == nil {
		r.returned = map[string]string{}
		return r
	}
	// "*" among the names is the explicit wildcard: every resource of
	// the type (the others named are among them). The snapshot cache
	// sends only the other names, and a wildcard stream so answered finds
	// resources unsent at every ACK (unsent): answered again at once, for
	// ever.
	if len(req.GetResourceNames()) == 0 || slices.Contains(req.GetResourceNames(), explicitWildcard) {
		// The stream's subscription deletes from the map it is given
		// when a later request names fewer resources: each its own,
		// cloned when the stream sends it (GetReturnedResources), not
		// here — set answers every stream at once, and a thousand
		// clones made together were the largest share of the server's
		// live heap at a push (BenchmarkPush1000).
		r.anys, r.shared = t.anys, t.returned
		return r
	}
	key, n := t.selection(req.GetResourceNames())
	if n == len(t.names) {
		// Every resource of the type, in the same order: the whole-type
		// response exactly.
		r.anys, r.shared = t.anys, t.returned
		return r
	}
	r.anys, r.returned, r.shared = t.named(e.version, key, n)
	return r
}

// explicitWildcard is the name of every resource of a type (xDS protocol).
const explicitWildcard = "*"

// sharedResponse is one stream's response: its own DiscoveryResponse (the
// server sets the nonce in it) holding the shared encoded resources.
type sharedResponse struct {
	req      *cachev3.Request
	version  string
	anys     []*anypb.Any
	returned map[string]string
	// shared, when set, is the version's own returned set (of the type,
	// or of a named set), cloned into returned at the first
	// GetReturnedResources.
	shared map[string]string
	once   sync.Once
	out    *discoveryv3.DiscoveryResponse
	cloned sync.Once
}

func (r *sharedResponse) GetDiscoveryResponse() (*discoveryv3.DiscoveryResponse, error) {
	r.once.Do(func() {
		r.out = &discoveryv3.DiscoveryResponse{VersionInfo: r.version, Resources: r.anys, TypeUrl: r.req.GetTypeUrl()}
	})
	return r.out, nil
}

func (r *sharedResponse) GetRequest() *discoveryv3.DiscoveryRequest { return r.req }
func (r *sharedResponse) GetVersion() (string, error)               { return r.version, nil }
func (r *sharedResponse) GetResponseVersion() string                { return r.version }
func (r *sharedResponse) GetReturnedResources() map[string]string {
	r.cloned.Do(func() {
		if r.shared != nil {
			r.returned, r.shared = maps.Clone(r.shared), nil
		}
	})
	return r.returned
}
func (r *sharedResponse) GetContext() context.Context { return context.Background() }
