package api

import "time"

// XDSStatus is the control plane's view of its nodes: GET
// /admin/xds/status (meshguard xds status, docs/xds.md).
type XDSStatus struct {
	Version string    `json:"version"` // the current snapshot's
	Nodes   []XDSNode `json:"nodes"`   // nodes with an open stream, by id
	Gone    []XDSNode `json:"gone"`    // the last nodes whose streams all closed, latest first
}

// XDSNode is what one node (an Envoy, or a proxyless gRPC client) was last
// sent and what it made of it.
type XDSNode struct {
	ID        string            `json:"id"`
	Cluster   string            `json:"cluster,omitempty"`
	Streams   int               `json:"streams"` // open xDS streams; 0: gone
	FirstSeen time.Time         `json:"firstSeen"`
	LastSeen  time.Time         `json:"lastSeen"`
	Left      time.Time         `json:"left,omitzero"` // when its last stream closed (gone nodes)
	Acked     map[string]string `json:"acked"`         // resource type (short) → version ACKed
	LastNack  *XDSNack          `json:"lastNack,omitempty"`
}

// XDSNack is a node's refusal of a configuration.
type XDSNack struct {
	Type  string    `json:"type"`
	Keeps string    `json:"keeps,omitempty"` // the version it keeps running (state of the world only)
	Error string    `json:"error"`
	At    time.Time `json:"at"`
}
