package api

import "github.com/meshguard/meshguard/trust"

// Service sources.
const (
	ServiceFromFile = "file"   // SERVICES_FILE
	ServiceStored   = "stored" // PUT /admin/services/{name}
)

// Service is one service of the catalogue (docs/services.md): the body of
// PUT /admin/services/{name}.
type Service struct {
	Name      string         `json:"name"`
	Hosts     []string       `json:"hosts"`
	Port      int            `json:"port"`
	Endpoints []string       `json:"endpoints"`
	Agent     string         `json:"agent,omitempty"`
	MinTier   trust.Tier     `json:"minTier"`
	Routes    []ServiceRoute `json:"routes,omitempty"`
	// Protocol is the agent protocol the service speaks: "mcp", "a2a" or
	// empty (docs/mcp.md, docs/a2a.md).
	Protocol string `json:"protocol,omitempty"`
}

// ServiceRoute maps requests to an action: Method ("" for any) and Path
// (exact, or a prefix ending in '*').
type ServiceRoute struct {
	Method string `json:"method,omitempty"`
	Path   string `json:"path"`
	Action string `json:"action"`
}

// ServiceEntry is a service and where it comes from (ServiceFromFile or
// ServiceStored): the answer of GET and PUT /admin/services/{name}.
type ServiceEntry struct {
	Service
	Source string `json:"source"`
}

// ServiceList is the answer of GET /admin/services.
type ServiceList struct {
	Services []ServiceEntry `json:"services"`
}
