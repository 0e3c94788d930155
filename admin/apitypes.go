package admin

import (
	"github.com/meshguard/meshguard/api"
	"github.com/meshguard/meshguard/identity"
)

// The API's bodies are package api's types; these convert identity's
// types to them at the edge, so identity keeps its methods and api stays
// free of them.

func agentBody(a identity.Agent) api.Agent {
	return api.Agent{
		ID: a.ID, Name: a.Name, TrustTier: a.TrustTier, Tags: a.Tags, Hosts: a.Hosts, SPIFFEIDs: a.SPIFFEIDs,
		Metadata: a.Metadata, Status: string(a.Status), CreatedAt: a.CreatedAt, UpdatedAt: a.UpdatedAt,
	}
}

func agentBodies(as []identity.Agent) []api.Agent {
	if as == nil {
		return nil
	}
	out := make([]api.Agent, len(as))
	for i := range as {
		out[i] = agentBody(as[i])
	}
	return out
}

func revocationBody(r identity.RevokedToken) api.Revocation {
	return api.Revocation{JTI: r.JTI, AgentID: r.AgentID, ExpiresAt: r.ExpiresAt, RevokedAt: r.RevokedAt, Reason: r.Reason}
}

func revocationBodies(rs []identity.RevokedToken) []api.Revocation {
	if rs == nil {
		return nil
	}
	out := make([]api.Revocation, len(rs))
	for i := range rs {
		out[i] = revocationBody(rs[i])
	}
	return out
}
