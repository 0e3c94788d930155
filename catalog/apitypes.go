package catalog

import (
	"github.com/meshguard/meshguard/agentproto"
	"github.com/meshguard/meshguard/api"
)

// API is s as the HTTP API shows it (PUT /admin/services/{name}).
func (s *Service) API() api.Service {
	out := api.Service{
		Name: s.Name, Hosts: s.Hosts, Port: s.Port, Endpoints: s.Endpoints, Agent: s.Agent, MinTier: s.MinTier,
		Protocol: string(s.Protocol),
	}
	if s.Routes != nil {
		out.Routes = make([]api.ServiceRoute, len(s.Routes))
		for i, r := range s.Routes {
			out.Routes[i] = api.ServiceRoute{Method: r.Method, Path: r.Path, Action: r.Action}
		}
	}
	return out
}

// API is e as the HTTP API shows it (GET /admin/services).
func (e *Entry) API() api.ServiceEntry {
	return api.ServiceEntry{Service: e.Service.API(), Source: string(e.Source)}
}

// ServiceFromAPI is the inverse of Service.API: the service a request
// body describes, to validate and store.
func ServiceFromAPI(s *api.Service) Service {
	out := Service{
		Name: s.Name, Hosts: s.Hosts, Port: s.Port, Endpoints: s.Endpoints, Agent: s.Agent, MinTier: s.MinTier,
		Protocol: agentproto.Protocol(s.Protocol),
	}
	if s.Routes != nil {
		out.Routes = make([]Route, len(s.Routes))
		for i, r := range s.Routes {
			out.Routes[i] = Route{Method: r.Method, Path: r.Path, Action: r.Action}
		}
	}
	return out
}
