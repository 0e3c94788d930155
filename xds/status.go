package xds

import (
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"

	"github.com/meshguard/meshguard/api"
)

// The status types are the API's (GET /admin/xds/status): one definition
// of their JSON, in package api.
type (
	// NodeStatus is what one node was last sent and what it made of it.
	NodeStatus = api.XDSNode
	// Nack is a node's refusal of a configuration.
	Nack = api.XDSNack
	// Status is the server's view of its nodes.
	Status = api.XDSStatus
)

const (
	// MaxGone is how many nodes that left Status still shows: nodes are
	// forgotten when they leave, so pods coming and going grow nothing.
	MaxGone = 100
	// maxErrorLen bounds a NACK's message kept (it comes from the node).
	maxErrorLen = 1024
	// maxNodeField bounds a node's id and cluster kept (they come from
	// the node too).
	maxNodeField = 256
)

// tracker keeps NodeStatus per connected node, fed by the server's
// callbacks, and the last MaxGone nodes that left.
type tracker struct {
	mu      sync.Mutex
	nodes   map[string]*NodeStatus // nodes with an open stream
	gone    []NodeStatus           // oldest first, at most MaxGone
	streams map[streamID]string    // stream → node id
	now     func() time.Time
}

func newTracker() *tracker {
	return &tracker{nodes: map[string]*NodeStatus{}, streams: map[streamID]string{}, now: time.Now}
}

// clip bounds a string the node sent.
func clip(s string) string {
	if len(s) <= maxNodeField {
		return s
	}
	return strings.ToValidUTF8(s[:maxNodeField], "") + "…"
}

// streamID names a stream: go-control-plane numbers state-of-the-world and
// delta streams each from 1, so the number alone is ambiguous.
type streamID struct {
	delta bool
	n     int64
}

// request records one request of a stream: the node on its first, then
// ACKs (a nonce without an error) and NACKs (a nonce with one). It returns
// the NACK, if it was one, for the log.
func (t *tracker) request(stream streamID, node *corev3.Node, typeURL, version, nonce string, refused *rpcstatus.Status) *Nack {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	id, known := t.streams[stream]
	if !known {
		id = clip(node.GetId())
		if id == "" {
			return nil
		}
		t.streams[stream] = id
		n := t.nodes[id]
		if n == nil {
			// Back after leaving: a new session, which no longer counts
			// as gone.
			t.gone = slices.DeleteFunc(t.gone, func(g NodeStatus) bool { return g.ID == id })
			n = &NodeStatus{ID: id, FirstSeen: now, Acked: map[string]string{}}
			t.nodes[id] = n
		}
		n.Cluster = clip(node.GetCluster())
		n.Streams++
	}
	n := t.nodes[id]
	n.LastSeen = now
	if nonce == "" {
		return nil
	}
	short := typeURL[strings.LastIndexByte(typeURL, '.')+1:]
	if refused != nil {
		msg := refused.GetMessage()
		if len(msg) > maxErrorLen {
			msg = strings.ToValidUTF8(msg[:maxErrorLen], "") + "…"
		}
		n.LastNack = &Nack{Type: short, Keeps: version, Error: msg, At: now}
		return n.LastNack
	}
	if _, had := n.Acked[short]; had || len(n.Acked) < maxAckedTypes {
		n.Acked[short] = version
	}
	return nil
}

// maxAckedTypes bounds the resource types kept per node: the type URL
// comes from the node, and the server knows five.
const maxAckedTypes = 16

// closed forgets a stream; a node's last closing moves it to the gone.
func (t *tracker) closed(stream streamID) {
	t.mu.Lock()
	defer t.mu.Unlock()
	id, ok := t.streams[stream]
	if !ok {
		return
	}
	delete(t.streams, stream)
	n := t.nodes[id]
	if n.Streams--; n.Streams > 0 {
		return
	}
	delete(t.nodes, id)
	n.Left = t.now()
	if len(t.gone) == MaxGone {
		t.gone = slices.Delete(t.gone, 0, 1)
	}
	t.gone = append(t.gone, *n)
}

// connected counts nodes with an open stream (meshguard_xds_clients).
func (t *tracker) connected() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.nodes)
}

// snapshot copies the connected nodes (by id) and the gone (latest first).
func (t *tracker) snapshot() (live, gone []NodeStatus) {
	t.mu.Lock()
	defer t.mu.Unlock()
	live = make([]NodeStatus, 0, len(t.nodes))
	for _, n := range t.nodes {
		live = append(live, copyStatus(n))
	}
	slices.SortFunc(live, func(a, b NodeStatus) int { return strings.Compare(a.ID, b.ID) })
	gone = make([]NodeStatus, 0, len(t.gone))
	for i := len(t.gone) - 1; i >= 0; i-- {
		gone = append(gone, copyStatus(&t.gone[i]))
	}
	return live, gone
}

func copyStatus(n *NodeStatus) NodeStatus {
	c := *n
	c.Acked = maps.Clone(n.Acked)
	if n.LastNack != nil {
		nack := *n.LastNack
		c.LastNack = &nack
	}
	return c
}

// Status reports the connected nodes, the last nodes gone, and the
// current version.
func (s *Server) Status() Status {
	live, gone := s.track.snapshot()
	return Status{Version: s.versionNow(), Nodes: live, Gone: gone}
}

// versionNow is the current snapshot's version ("" before the first).
func (s *Server) versionNow() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.version == 0 {
		return ""
	}
	return strconv.Itoa(s.version)
}

// Connected is the number of nodes with an open stream.
func (s *Server) Connected() int { return s.track.connected() }

// onSotW and onDelta feed the tracker from requests.
func (s *Server) onSotW(n int64, r *discoveryv3.DiscoveryRequest) {
	stream := streamID{n: n}
	if nack := s.track.request(stream, r.GetNode(), r.GetTypeUrl(), r.GetVersionInfo(), r.GetResponseNonce(), r.GetErrorDetail()); nack != nil {
		s.log.Warn("xds: a node refused a configuration (NACK)", "node", s.track.nodeOf(stream), "type", nack.Type, "error", nack.Error)
	}
}

func (s *Server) onDelta(n int64, r *discoveryv3.DeltaDiscoveryRequest) {
	stream := streamID{delta: true, n: n}
	// A delta request names no version: an ACK is of what was sent, the
	// current version (racing an Update, it may be the one before); a NACK
	// says nothing of what the node keeps.
	version := ""
	if r.GetErrorDetail() == nil {
		version = s.versionNow()
	}
	if nack := s.track.request(stream, r.GetNode(), r.GetTypeUrl(), version, r.GetResponseNonce(), r.GetErrorDetail()); nack != nil {
		s.log.Warn("xds: a node refused a configuration (NACK)", "node", s.track.nodeOf(stream), "type", nack.Type, "error", nack.Error)
	}
}

func (t *tracker) nodeOf(stream streamID) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.streams[stream]
}
