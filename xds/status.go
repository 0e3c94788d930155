package xds

import (
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
)

// NodeStatus is what one node (an Envoy, or a proxyless gRPC client) was
// last sent and what it made of it (meshguard xds status).
type NodeStatus struct {
	ID        string            `json:"id"`
	Cluster   string            `json:"cluster,omitempty"`
	Streams   int               `json:"streams"` // open xDS streams; 0: disconnected
	FirstSeen time.Time         `json:"firstSeen"`
	LastSeen  time.Time         `json:"lastSeen"`
	Acked     map[string]string `json:"acked"` // resource type (short) → version ACKed
	LastNack  *Nack             `json:"lastNack,omitempty"`
}

// Nack is a node's refusal of a configuration.
type Nack struct {
	Type  string    `json:"type"`
	Keeps string    `json:"keeps,omitempty"` // the version it keeps running (state of the world only)
	Error string    `json:"error"`
	At    time.Time `json:"at"`
}

// Status is the server's view of its nodes.
type Status struct {
	Version string       `json:"version"` // the current snapshot's
	Nodes   []NodeStatus `json:"nodes"`
}

// maxErrorLen bounds a NACK's message kept (it comes from the node).
const maxErrorLen = 1024

// tracker keeps NodeStatus per node, fed by the server's callbacks.
type tracker struct {
	mu      sync.Mutex
	nodes   map[string]*NodeStatus
	streams map[int64]string // stream → node id
	now     func() time.Time
}

func newTracker() *tracker {
	return &tracker{nodes: map[string]*NodeStatus{}, streams: map[int64]string{}, now: time.Now}
}

// request records one request of a stream: the node on its first, then
// ACKs (a nonce without an error) and NACKs (a nonce with one). It returns
// the NACK, if it was one, for the log.
func (t *tracker) request(stream int64, node *corev3.Node, typeURL, version, nonce string, refused *rpcstatus.Status) *Nack {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	id, known := t.streams[stream]
	if !known {
		id = node.GetId()
		if id == "" {
			return nil
		}
		t.streams[stream] = id
		n := t.nodes[id]
		if n == nil {
			n = &NodeStatus{ID: id, FirstSeen: now, Acked: map[string]string{}}
			t.nodes[id] = n
		}
		n.Cluster = node.GetCluster()
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
			msg = msg[:maxErrorLen] + "…"
		}
		n.LastNack = &Nack{Type: short, Keeps: version, Error: msg, At: now}
		return n.LastNack
	}
	n.Acked[short] = version
	return nil
}

func (t *tracker) closed(stream int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if id, ok := t.streams[stream]; ok {
		delete(t.streams, stream)
		t.nodes[id].Streams--
	}
}

// connected counts nodes with an open stream (meshguard_xds_clients).
func (t *tracker) connected() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, s := range t.nodes {
		if s.Streams > 0 {
			n++
		}
	}
	return n
}

func (t *tracker) snapshot() []NodeStatus {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]NodeStatus, 0, len(t.nodes))
	for _, n := range t.nodes {
		c := *n
		c.Acked = make(map[string]string, len(n.Acked))
		for k, v := range n.Acked {
			c.Acked[k] = v
		}
		if n.LastNack != nil {
			nack := *n.LastNack
			c.LastNack = &nack
		}
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b NodeStatus) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// Status reports every node seen, and the current version.
func (s *Server) Status() Status {
	return Status{Version: s.versionNow(), Nodes: s.track.snapshot()}
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
func (s *Server) onSotW(stream int64, r *discoveryv3.DiscoveryRequest) {
	if nack := s.track.request(stream, r.GetNode(), r.GetTypeUrl(), r.GetVersionInfo(), r.GetResponseNonce(), r.GetErrorDetail()); nack != nil {
		s.log.Warn("xds: a node refused a configuration (NACK)", "node", s.track.nodeOf(stream), "type", nack.Type, "error", nack.Error)
	}
}

func (s *Server) onDelta(stream int64, r *discoveryv3.DeltaDiscoveryRequest) {
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

func (t *tracker) nodeOf(stream int64) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.streams[stream]
}
