package engine

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/meshguard/meshguard/identity"
	"github.com/meshguard/meshguard/internal/edge"
	"github.com/meshguard/meshguard/policy"
	"github.com/meshguard/meshguard/trust"
)

// decide runs the pipeline, filling d. It returns an error only for
// MeshGuard's own failures.
func (e *Engine) decide(ctx context.Context, r *Request, d *Decision, now time.Time) error {
	d.rpc = e.speaksJSONRPC(r)
	d.answer = e.cfg.Answer
	if err := checkBounds(r); err != nil {
		return d.refuse(err)
	}

	// 1. Who is calling.
	var actor policy.Subject
	var token *identity.Claims // nil for a caller known by its principal alone
	switch {
	case r.Token != "":
		v, err := e.authenticate(ctx, r.Token, d)
		if err != nil || v == nil {
			return err // a failure, or a denial already in d
		}
		actor, token = subject(&v.Agent, v.Tier), &v.Claims
		if r.Principal != "" {
			if err := e.samePeer(ctx, r.Principal, &v.Agent, d); err != nil || d.Effect == "deny" {
				return err
			}
		}
	case r.Principal != "":
		a, ok, err := e.peer(ctx, r.Principal, d)
		if err != nil || !ok {
			return err
		}
		actor = subject(&a, a.TrustTier)
		d.AgentID, d.AgentName, d.Tier = actor.ID, actor.Name, actor.Tier
	default:
		return d.deny(401, ReasonUnauthorized, "missing bearer token")
	}

	// 2. What it wants to do.
	set := e.cfg.Policies.Current()
	d.Revision = set.Revision()
	if err := e.resolve(r, d); err != nil {
		return d.refuse(err)
	}
	if d.Tier < r.MinTier {
		return d.deny(403, ReasonTierBelowMinimum, "this service admits agents of tier %s and above; %q is %s", r.MinTier, actor.Name, d.Tier)
	}
	reqCtx, err := requestContext(r, d.Call, set.RequestKeys())
	if err != nil {
		return d.refuse(err)
	}
	d.Context = reqCtx

	// 3. For whom.
	var grant *verifiedGrant
	var chain []policy.Subject
	var handOffDenied bool // a denial at the next hop is not the chain's
	d.Chain = []string{actor.ID}
	if r.Delegation != "" {
		// The span covers the token and the policy's chain checks (revoked,
		// ceiling, depth, …), which Evaluate makes: it ends, with the
		// reason the chain was denied for, once those are decided.
		ds := e.child(ctx, SpanDelegation)
		defer func() { endDelegation(ds, d, handOffDenied) }()
		g, chainErr := e.chain(ctx, r, actor, d)
		if chainErr != nil || g == nil {
			return chainErr // a failure, or a denial already in d
		}
		grant, chain = g, g.members
		d.ChainNames = make([]string, 0, len(chain)+1)
		for i := range chain {
			d.ChainNames = append(d.ChainNames, chain[i].Name)
		}
		d.ChainNames = append(d.ChainNames, actor.Name)
	}

	// 4. Policy, including the delegation checks.
	in := policy.Input{Agent: actor, Action: d.Action, Resource: d.Resource, Context: reqCtx, Chain: chain, Time: now,
		ArgumentsUnknown: d.Call != nil && d.Call.HeaderOnly}
	if grant != nil {
		in.Scope = grant.Scope
	}
	d.inputs = recordInputs{set: true, actor: actor, members: chain, scope: in.Scope, keys: set.RequestKeys()}
	ps := e.child(ctx, SpanEvaluate)
	pd := set.Evaluate(&in)
	d.Reason, d.Message, d.Policy, d.Rule = pd.Reason, pd.Message, pd.Policy, pd.Rule
	if ps.IsRecording() {
		ps.SetAttributes(AttrPolicyName.String(pd.Policy), AttrRule.String(pd.Rule), AttrReason.String(pd.Reason), AttrDecision.String(string(pd.Effect)))
	}
	if set.HasShadow() {
		e.shadow(set, &in, &pd, d, ps)
	}
	ps.End()
	// An approve decision goes on through every other check: a person is
	// asked only about a request nothing else refuses (e.approve, last).
	if pd.Effect != policy.Approve && !pd.Allowed() {
		if pd.Reason == policy.ReasonAgentRevoked {
			return d.deny(401, ReasonAgentRevoked, "%s", pd.Message)
		}
		return d.deny(403, pd.Reason, "%s", pd.Message)
	}
	d.inputs.policyAllowed = true
	if grant != nil && grant.MaxChain > 0 && len(chain) > grant.MaxChain {
		return d.deny(403, policy.ReasonDelegationDepth, "the delegation token allows at most %d delegating agents; this chain has %d", grant.MaxChain, len(chain))
	}

	// 5. Where it goes: handing the task to another agent.
	target, toAgent, err := e.target(ctx, r.Host)
	if err != nil {
		return err
	}
	if toAgent && target.ID != actor.ID {
		d.TargetName = target.Name
		ts := subject(&target, target.TrustTier)
		hs := e.child(ctx, SpanHandOff)
		hd := set.HandOff(chain, actor, ts)
		endHandOff(hs, &target, &hd)
		if !hd.Allowed() {
			handOffDenied = true
			d.Policy, d.Rule = hd.Policy, ""
			return d.deny(403, hd.Reason, "calling agent %q: %s", target.Name, hd.Message)
		}
		if grant != nil && grant.MaxChain > 0 && len(chain)+1 > grant.MaxChain {
			handOffDenied = true
			return d.deny(403, policy.ReasonDelegationDepth, "calling agent %q would exceed the %d delegating agents the delegation token allows", target.Name, grant.MaxChain)
		}
	}

	// 6. How often.
	if err := e.limit(ctx, actor.ID, pd.Limits, d); err != nil || d.Effect == "deny" {
		return err
	}

	// 6a. Whether a person approved it.
	if pd.Effect == policy.Approve {
		if err := e.approve(ctx, r, &pd, d, now); err != nil || d.Effect == "deny" {
			return err
		}
	}

	// 7. The delegation token for the target.
	if toAgent && target.ID != actor.ID {
		var parent *identity.DelegationGrant
		if grant != nil {
			parent = &grant.DelegationGrant
		}
		if err := e.mint(actor.ID, target.ID, parent, token, now, d); err != nil {
			return err
		}
	}
	d.Status = 200
	if d.Call != nil && d.Call.Lists() {
		d.listing = &listing{set: set, in: in}
	}
	return nil
}

// checkBounds refuses oversized or non-UTF-8 input, and control
// characters, before any work (edge.CheckText says why). Its error matches the
// ErrText sentinel, or errContextTooLarge.
func checkBounds(r *Request) error {
	for _, f := range []struct {
		name, v string
		max     int
	}{
		{"path", r.Path, MaxPathLen},
		{"host", r.Host, MaxHostLen},
		{"action", r.Action, MaxActionLen},
		{"resource", r.Resource, MaxResourceLen},
		{"method", r.Method, 16},
		{"principal", r.Principal, MaxPrincipalLen},
	} {
		switch err := edge.CheckText(f.v, f.max); {
		case errors.Is(err, edge.ErrTextTooLong):
			return refused(err, "%s is longer than the limit of %d bytes", f.name, f.max)
		case errors.Is(err, edge.ErrTextNotUTF8):
			return refused(err, "%s is not valid UTF-8", f.name)
		case err != nil:
			return refused(err, "%s contains a control character", f.name)
		}
	}
	if r.Context != nil {
		if len(r.Context) > MaxContextKeys {
			return refused(errContextTooLarge, "context has more than %d keys", MaxContextKeys)
		}
		// The same bound as the header's: the context is kept in the
		// audit record of every decision.
		if b, err := json.Marshal(r.Context); err != nil || len(b) > MaxContextLen {
			return refused(errContextTooLarge, "context is larger than the limit of %d bytes of JSON", MaxContextLen)
		}
	}
	return nil
}

// resolve sets d.Action and d.Resource. At POST /v1/check they are what
// the caller states. Everywhere else they come from the real request: the
// action from the route mapping (the proxy's route, else the config's
// routes), from the body of a route declaring an agent protocol (d.Call),
// else derived from the method and path; the resource is the path. No
// header chooses either. It returns a refusal when the action cannot be
// resolved (errActionUnresolved when nothing maps the request).
func (e *Engine) resolve(r *Request, d *Decision) error {
	path, err := normalizePath(splitPath(r.Path))
	if err != nil {
		return err
	}
	if err := checkPath(path); err != nil {
		return err
	}
	if r.cooperative() {
		d.Action, d.Resource = r.Action, r.Resource
	} else {
		method := strings.ToUpper(r.Method)
		if method != r.Method {
			// Methods are case-sensitive and a proxy's route (Envoy's,
			// the catalogue's) matches them exactly: "post /outbox" would
			// miss the route mapping POST /outbox and be derived here.
			return refused(errMethodCase, "method %q is not in upper case: methods are case-sensitive, and routes match them exactly; send %q", r.Method, method)
		}
		if err := methodOverride(r, method); err != nil {
			return err
		}
		d.Action, d.Resource = r.RouteAction, path
		proto, service := r.RouteProtocol, r.RouteService
		if d.Action == "" && proto == "" {
			if rt := e.route(method, identity.NormalizeHost(r.Host), path); rt != nil {
				d.Action, proto, service = rt.action, rt.proto, rt.service
			}
		}
		if d.Action == "" && proto != "" {
			if d.Call, err = readCall(r, method, path, proto, service); err != nil {
				return err
			}
			d.Action = d.Call.Action
			if len(d.Action) > MaxActionLen {
				return refused(edge.ErrTextTooLong, "the action %s reads from the request is longer than the limit of %d bytes", d.Call.Method, MaxActionLen)
			}
		}
		if d.Action == "" {
			verb := derivedVerb(method)
			if verb == "" {
				return refused(errActionUnresolved, "no route maps this request and method %q maps to no verb; map it to an action with a route (config routes:, or the service catalogue's)", r.Method)
			}
			d.Action = verb + ":" + strings.TrimPrefix(path, "/")
		}
	}
	if !strings.Contains(d.Action, ":") || strings.ContainsAny(d.Action, " \t\r\n") {
		return refused(errActionMalformed, "action %q: expected verb:resource without whitespace", d.Action)
	}
	// The path was percent-decoded: check what it decoded to.
	if edge.HasControl(d.Action) || edge.HasControl(d.Resource) {
		return refused(errActionMalformed, "action %q or resource %q contains a control character", d.Action, d.Resource)
	}
	return nil
}

// normalizePath is edge.NormalizePath, the one rule for it: the gateway
// decides and forwards the path in this form too.
func normalizePath(p string) (string, error) {
	n, ok := edge.NormalizePath(p)
	if !ok {
		return "", refused(errMalformedEscape, "path %q has a malformed percent-encoding", p)
	}
	return n, nil
}

// checkPath refuses normalised paths that mean something other than they
// say: dot segments, empty segments and encoded slashes or backslashes.
// Actions and resources are derived from the path, so "/docs/../admin"
// would be decided as read:docs/../admin — matched by a read:docs/* rule —
// while the upstream serves /admin. Proxies normalise paths first (Envoy's
// normalize_path, merge_slashes and path_with_escaped_slashes_action), and
// the gateway does; anything that still arrives is refused, not guessed at:
// errPathNotNormalized, or errPathAmbiguous for what servers split.
func checkPath(p string) error {
	if p == "" || p == "/" {
		return nil
	}
	switch {
	case !strings.HasPrefix(p, "/"):
		return refused(errPathNotNormalized, "path %q does not start with /", p)
	case strings.Contains(p, "//"):
		return refused(errPathNotNormalized, "path %q has an empty segment; normalise paths before authorizing (Envoy: merge_slashes)", p)
	case strings.IndexByte(p, ';') >= 0, strings.Contains(p, "%3B"):
		// Servlet containers and Spring read ";…" as a path parameter and
		// drop it: "/docs;/private/x" would be decided as itself and served
		// as /docs/private/x. A server that decodes first does the same
		// with "%3B".
		return refused(errPathAmbiguous, "path %q has a ';' (a path parameter), encoded or not: MeshGuard decides on paths without them; send the path as the upstream reads it", p)
	case strings.Contains(p, "%2F"), strings.Contains(p, "%5C"), strings.Contains(p, "\\"):
		return refused(errPathNotNormalized, "path %q has an encoded slash or a backslash; normalise paths before authorizing (Envoy: path_with_escaped_slashes_action)", p)
	case strings.Contains(p, "%3F"), strings.Contains(p, "%23"), strings.Contains(p, "%0"), strings.Contains(p, "%1"), strings.Contains(p, "%7F"):
		// Escapes are upper-cased and every '%' starts one, so "%0" and
		// "%1" are the C0 controls. Decoded, '?' and '#' end the path and
		// NUL ends a C string: "/admin%3F.css" is /admin to a server that
		// decodes before it parses.
		return refused(errPathAmbiguous, "path %q has an encoded '?', '#' or control character, which ends the path (or the name) for servers that decode before they parse", p)
	}
	for seg := range strings.SplitSeq(p[1:], "/") {
		if seg == "." || seg == ".." {
			return refused(errPathNotNormalized, "path %q has a dot segment; normalise paths before authorizing (Envoy: normalize_path)", p)
		}
	}
	return nil
}

// members looks up the delegating agents. An agent that no longer exists
// counts as revoked; a store failure is an internal error.
func (e *Engine) members(ctx context.Context, ids []string) ([]policy.Subject, error) {
	chain := make([]policy.Subject, len(ids))
	for i, id := range ids {
		a, err := e.cfg.Agents.GetAgent(ctx, id)
		switch {
		case errors.Is(err, identity.ErrNotFound):
			chain[i] = policy.Subject{ID: id} // inactive: delegation_revoked
		case err != nil:
			return nil, internal("looking up delegating agent", err)
		default:
			chain[i] = subject(&a, a.TrustTier)
		}
	}
	return chain, nil
}

// target returns the agent reached under host, if any. It returns the
// agent by value: most hosts belong to no agent, and a pointer would put
// every lookup's Agent on the heap.
func (e *Engine) target(ctx context.Context, host string) (identity.Agent, bool, error) {
	h := identity.NormalizeHost(host)
	if h == "" {
		return identity.Agent{}, false, nil
	}
	a, err := e.cfg.Agents.AgentByHost(ctx, h)
	switch {
	case errors.Is(err, identity.ErrNotFound):
		return identity.Agent{}, false, nil
	case err != nil:
		return identity.Agent{}, false, internal("looking up the target host", err)
	}
	return a, true, nil
}

// limit applies the rate limits the policy decision carries, per acting
// agent. The first exhausted limit denies with 429.
func (e *Engine) limit(ctx context.Context, agentID string, limits []policy.Limit, d *Decision) error {
	for _, l := range limits {
		for _, w := range []struct {
			n      int
			size   time.Duration
			suffix string
			unit   string
		}{{l.PerMinute, time.Minute, "/m", "minute"}, {l.PerHour, time.Hour, "/h", "hour"}} {
			if w.n == 0 {
				continue
			}
			res, err := e.cfg.Limiter.Allow(ctx, "agent/"+agentID+"/"+l.Key+w.suffix, w.n, w.size)
			if err != nil {
				return internal("rate limiter", err)
			}
			if !res.Allowed {
				d.RetryAfter = res.RetryAfter
				d.Policy, d.Rule, _ = strings.Cut(l.Key, "/")
				return d.deny(429, ReasonRateLimited, "rate limit of %d requests per %s (%s) exceeded", w.n, w.unit, l.Key)
			}
		}
	}
	return nil
}

// mint issues the target's delegation token: the grant handOn makes, with
// the parent's scope and cap (a hop the policy allowed narrows nothing).
func (e *Engine) mint(actorID, targetID string, parent *identity.DelegationGrant, token *identity.Claims, now time.Time, d *Decision) error {
	g := handOn(actorID, targetID, parent, token, now.Add(e.cfg.DelegationTTL), d)
	if parent != nil {
		g.Scope, g.MaxChain = parent.Scope, parent.MaxChain
	}
	tok, _, err := e.cfg.Delegator.Delegate(g)
	if err != nil {
		return internal("minting the delegation token", err)
	}
	d.TargetAgent, d.Delegation = targetID, tok
	return nil
}

// handOn is the grant that hands the task from the actor to the target:
// the chain so far with the target appended, expiring at expires but never
// outliving the actor's token (nil for an actor known by its peer
// principal, whose tokens are then bounded by DelegationTTL alone) or the
// parent delegation, void once that token (or a parent's) is revoked, and
// carrying d's trace so the next hop's check hangs under this decision.
// Both minting paths (Check's hop and Delegate) build their grant here.
func handOn(actorID, targetID string, parent *identity.DelegationGrant, token *identity.Claims, expires time.Time, d *Decision) identity.DelegationGrant {
	g := identity.DelegationGrant{Root: actorID, Actors: []string{targetID}, ExpiresAt: expires,
		Traceparent: edge.Traceparent{TraceID: d.TraceID, SpanID: d.SpanID, Sampled: d.TraceSampled}.String()}
	if parent != nil {
		g.ByTokens = append(make([]string, 0, len(parent.ByTokens)+1), parent.ByTokens...)
	}
	if token != nil {
		g.ByTokens = append(g.ByTokens, token.ID)
		if token.ExpiresAt.Before(g.ExpiresAt) {
			g.ExpiresAt = token.ExpiresAt
		}
	}
	if parent != nil {
		g.Root = parent.Root
		g.Actors = append(append(make([]string, 0, len(parent.Actors)+1), parent.Actors...), targetID)
		if parent.ExpiresAt.Before(g.ExpiresAt) {
			g.ExpiresAt = parent.ExpiresAt
		}
	}
	return g
}

// authenticate verifies an agent token and names the agent in d. A token
// that does not verify is a 401 denial in d (nil result, nil error); an
// error is MeshGuard's own failure. Check and Delegate both start here.
func (e *Engine) authenticate(ctx context.Context, tok string, d *Decision) (*identity.Verified, error) {
	v, err := e.cfg.Tokens.Verify(ctx, tok)
	switch {
	case errors.Is(err, identity.ErrAgentRevoked):
		return nil, d.deny(401, ReasonAgentRevoked, "agent is revoked")
	case errors.Is(err, identity.ErrTokenRevoked):
		return nil, d.deny(401, ReasonTokenRevoked, "token is revoked")
	case errors.Is(err, identity.ErrInvalidToken):
		return nil, d.deny(401, ReasonUnauthorized, "%v", err)
	case err != nil:
		return nil, internal("verifying the agent token", err)
	}
	d.AgentID, d.AgentName, d.Tier = v.Agent.ID, v.Agent.Name, v.Tier
	return v, nil
}

// subject is the policy engine's view of an agent at the given tier.
func subject(a *identity.Agent, tier trust.Tier) policy.Subject {
	return policy.Subject{ID: a.ID, Name: a.Name, Tier: tier, Tags: a.Tags, Active: a.Active()}
}

func quote(s string) string { return strconv.Quote(s) }

// verifiedGrant is a delegation token that holds for this actor, with the
// agents who delegated, as the policy sees them.
type verifiedGrant struct {
	identity.DelegationGrant
	members []policy.Subject
}

// chain verifies the request's delegation token for actor and sets
// d.Chain. A token that does not hold is a denial in d (nil grant, nil
// error); an error is MeshGuard's own failure.
func (e *Engine) chain(ctx context.Context, r *Request, actor policy.Subject, d *Decision) (*verifiedGrant, error) {
	g, err := e.cfg.Delegations.VerifyDelegation(r.Delegation)
	switch {
	case errors.Is(err, identity.ErrTokenRevoked):
		return nil, d.deny(403, policy.ReasonDelegationRevoked, "%v", err)
	case err != nil:
		return nil, d.deny(403, policy.ReasonDelegationActorMismatch, "the delegation token is not valid: %v", err)
	}
	if g.Actor() != actor.ID {
		return nil, d.deny(403, policy.ReasonDelegationActorMismatch, "the delegation token was issued to another agent, not to %q", actor.Name)
	}
	ids := g.Delegators()
	d.Chain = append(append(make([]string, 0, len(ids)+1), ids...), actor.ID)
	members, err := e.members(ctx, ids)
	if err != nil {
		return nil, err
	}
	return &verifiedGrant{DelegationGrant: g, members: members}, nil
}
