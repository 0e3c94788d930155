// Package engine is MeshGuard's one decision pipeline. Every enforcement
// point — Envoy ext_authz over gRPC and HTTP, the built-in gateway,
// POST /v1/check, the wasm filter's reports — turns its input into a Request
// and calls Engine.Check, which, once the input is within its bounds:
//
//  1. authenticates the agent (cached token verification, agent status,
//     effective tier);
//  2. resolves what is decided: at POST /v1/check the action, resource
//     and context the caller states; everywhere else they come from the
//     real request — the action from a route mapping, else derived from
//     method and path, the resource from the path, the context from the
//     headers and query parameters policies read (never a steering
//     header) — and holds the agent to the service's minimum tier.
//     Input refused here or before step 1 is answered in one place
//     (refuse): a 400, or a 403 for an action nothing resolves;
//  3. reads the delegation token, if any, into the chain of agents the
//     actor acts for;
//  4. evaluates policy (package policy), including the delegation checks;
//  5. applies the hand-on rule when the request goes to another agent;
//  6. applies rate limits;
//  7. mints that agent's delegation token — last, so that a request denied
//     or rate-limited mints nothing;
//
// and returns a Decision that carries everything an adapter needs to answer
// (status, reason, headers, body).
//
// Engine.Delegate is the other operation: POST /v1/delegations, an agent
// asking for a delegation token for another agent. It authenticates and
// reads the chain as Check does (steps 1 and 3), applies the hand-on rule
// (step 5), holds the token within the parent's depth and scope, mints
// it, and records the attempt like a decision. The engine does not know which adapter
// called it. Its error return is only for MeshGuard's own failures (the
// store is down): adapters turn those into a gRPC error or a 503, never an
// allow.
package engine
