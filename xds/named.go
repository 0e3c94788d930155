package xds

import (
	"slices"
	"sync"

	"google.golang.org/protobuf/types/known/anypb"
)

// A named request (Envoy's endpoints and routes, every type of gRPC's
// proxyless client) got its own resource list, returned set and protobuf
// encoding per stream: a push to a thousand Envoys marshalled the same
// endpoints and routes a thousand times (BenchmarkNamedFanout). Responses to
// named requests that carry the same resources of a version now share
// them, as whole-type responses do: one list, one returned set (cloned
// per stream when sent, as the stream's subscription deletes from it) and
// one encoding, marshalled by the first stream that sends it.

// maxNamedSets bounds the distinct sets of resources a type keeps shared
// responses for in one version: a client chooses its names, so past it a
// request is answered for its stream alone, as before. Each set holds at
// most what the whole type holds (a list, a returned set, an encoding),
// and its key one bit per resource, whatever the client sent.
const maxNamedSets = 64

// namedBudget bounds the resources the shared sets of a type with n
// resources carry together: sets of nearly every resource would otherwise
// hold 64 times the type's encoding (a large catalogue's megabytes, each),
// while many small sets (gRPC's proxyless clients name one each) still fit.
func namedBudget(n int) int { return 4*n + maxNamedSets }

// namedSets are a type's shared named responses in one version.
type namedSets struct {
	mu sync.Mutex
	// byKey: by the resources carried (key); byList: by their list's
	// first element, which is how a response leaving is recognised.
	byKey  map[string]*namedSet
	byList map[**anypb.Any]*namedSet
	held   int // resources the sets carry together (namedBudget)
}

// namedSet is one shared named response.
type namedSet struct {
	anys     []*anypb.Any
	returned map[string]string
	once     sync.Once
	wire     []byte // made by the first stream to send it; nil if it failed
}

// selection is the resources of t that names name (a bit each, in t's
// order) and how many they are. Each name is looked up in the sorted
// names: a node chooses how many it sends (up to a message's 4 MiB), so
// the cost must not be their number times the resources'
// (BenchmarkNamedResponse).
func (t *typeEncoded) selection(names []string) (key []byte, n int) {
	key = make([]byte, (len(t.names)+7)/8)
	for _, name := range names {
		if i, found := slices.BinarySearch(t.names, name); found && key[i/8]&(1<<(i%8)) == 0 {
			key[i/8] |= 1 << (i % 8)
			n++
		}
	}
	return key, n
}

// named is the response carrying the resources key selects (n of them):
// the shared one if there is one or room for one (shared set), else the
// stream's own (returned set).
func (t *typeEncoded) named(version string, key []byte, n int) (anys []*anypb.Any, returned, shared map[string]string) {
	t.sets.mu.Lock()
	defer t.sets.mu.Unlock()
	if s := t.sets.byKey[string(key)]; s != nil {
		return s.anys, nil, s.returned
	}
	anys, returned = make([]*anypb.Any, 0, n), make(map[string]string, n)
	for i, name := range t.names {
		if key[i/8]&(1<<(i%8)) != 0 {
			anys = append(anys, t.anys[i])
			returned[name] = version
		}
	}
	if n == 0 || len(t.sets.byKey) >= maxNamedSets || t.sets.held+n > namedBudget(len(t.names)) {
		return anys, returned, nil
	}
	if t.sets.byKey == nil {
		t.sets.byKey, t.sets.byList = map[string]*namedSet{}, map[**anypb.Any]*namedSet{}
	}
	s := &namedSet{anys: anys, returned: returned}
	t.sets.byKey[string(key)] = s
	t.sets.byList[&anys[0]] = s
	t.sets.held += n
	return anys, nil, returned
}

// namedWire is the shared encoding of the named response whose resource
// list is anys (nil if anys is no shared set's list), made now if no
// stream has sent it yet.
func (t *typeEncoded) namedWire(version, typeURL string, anys []*anypb.Any) []byte {
	if len(anys) == 0 {
		return nil
	}
	t.sets.mu.Lock()
	s := t.sets.byList[&anys[0]]
	t.sets.mu.Unlock()
	if s == nil || len(s.anys) != len(anys) {
		return nil
	}
	s.once.Do(func() {
		// On an error every stream sends its own encoding, whose error
		// the stream reports.
		s.wire, _ = wireEncode(version, typeURL, s.anys)
	})
	return s.wire
}
