package xds

import (
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// maxStreamTypes bounds the resource types one stream may name. The type
// URL comes from the node, and each one it names opens a watch that
// go-control-plane selects over at every request of the stream (its cost
// grows with the square of the types named) and that the shared cache
// keeps, and walks at each Update, when it serves none of that type.
// Envoy asks for about ten types; MeshGuard serves five.
const maxStreamTypes = 32

// streamTypes counts the distinct type URLs each open stream named.
type streamTypes struct {
	mu sync.Mutex
	m  map[streamID]map[string]struct{}
}

func newStreamTypes() *streamTypes { return &streamTypes{m: map[streamID]map[string]struct{}{}} }

// admit records that stream names typeURL; past maxStreamTypes distinct
// ones it refuses, which ends the stream.
func (s *streamTypes) admit(stream streamID, typeURL string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := s.m[stream]
	if _, ok := seen[typeURL]; ok {
		return nil
	}
	if len(seen) >= maxStreamTypes {
		return status.Errorf(codes.ResourceExhausted, "xds: a stream may name at most %d resource types", maxStreamTypes)
	}
	if seen == nil {
		seen = map[string]struct{}{}
		s.m[stream] = seen
	}
	seen[typeURL] = struct{}{}
	return nil
}

func (s *streamTypes) closed(stream streamID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, stream)
}
