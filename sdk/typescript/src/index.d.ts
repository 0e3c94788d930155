// Type declarations of @meshguard/sdk (src/index.js). tsc checks them with
// test/types.ts; the conformance tests check that the code behaves as declared.

/** What MeshGuard decided: /v1/check's body (docs/api.md). A denial is a Decision too. */
export interface Decision {
  /** Whether the action may go ahead. */
  allowed: boolean;
  /** "allow" or "deny" (in audit mode a deny can come with allowed: true). */
  decision: string;
  /** The decision's HTTP status: 200 or 403. */
  status?: number;
  /** The stable reason code: rule_allow, rule_deny, no_matching_rule, delegation_scope, … */
  reason: string;
  message?: string;
  policy?: string;
  rule?: string;
  decisionId?: string;
  traceId?: string;
  agentId?: string;
  agentName?: string;
  trustTier?: string;
  action?: string;
  resource?: string;
  /** Agent ids, root first, the acting agent last. */
  chain?: string[];
  policyRevision?: string;
  mode?: string;
  /** The human approval a 403 waits on or was refused by (approval_required, approval_denied, approval_expired). */
  approval_id?: string;
  /** Where to follow it: /v1/approvals/{id}. */
  approval_url?: string;
  /** approval_id under the name the other fields (and ApprovalRequired) use: waitForApproval(d.approvalId). */
  approvalId?: string;
  /** approval_url, likewise. */
  approvalUrl?: string;
  [field: string]: unknown;
}

/** A human approval's state: GET /v1/approvals/{id} (docs/governance.md). */
export interface Approval {
  id: string;
  status: 'pending' | 'approved' | 'denied' | 'expired' | 'used';
  action?: string;
  resource?: string;
  agentId?: string;
  createdAt?: string;
  expiresAt?: string;
  decidedAt?: string;
  decidedBy?: string;
  reason?: string;
  traceId?: string;
  [field: string]: unknown;
}

/** What check, require and governed ask about. */
export interface CheckOptions {
  resource?: string;
  /** Matched by the policies' context conditions. */
  context?: Record<string, unknown>;
  /**
   * 1 to 60: MeshGuard holds the answer of a request that needs a person's approval until it is
   * decided (Prefer: wait); the answer is the final decision.
   */
  waitSeconds?: number;
}

/** What require asks about, and how long it may wait for an approval before asking again once. */
export interface RequireOptions extends CheckOptions {
  waitForApprovalMs?: number;
}

export interface DelegateOptions {
  /** The delegation's scope: 1 to 64 action patterns. */
  actions: string[];
  /** Hand-offs the task may travel from here, 1 to 5 (default 1). */
  maxDepth?: number;
  /** A duration such as "30m", or seconds (default 1 h). */
  ttl?: string | number;
}

export interface MeshGuardOptions {
  /** MeshGuard's base URL, http or https. */
  url: string;
  /** The agent's token (POST /admin/agents). Never logged, never in an error. */
  token: string;
  /** Per request (default 5000). A request that times out is not retried. */
  timeoutMs?: number;
  /** Retries of what is safe to retry: a refused connection, 503, 429 (default 2, at most 10). */
  retries?: number;
  /** The longest Retry-After (or backoff) waited for; beyond it the error is returned at once (default 5000). */
  maxRetryWaitMs?: number;
  /** Continue this incoming W3C traceparent's trace when no OpenTelemetry span is active. */
  traceparent?: string;
  /**
   * Hosts ("host:port" or URLs) besides MeshGuard's own whose requests `fetch` gives the agent's
   * headers (services behind Envoy's ext_authz). A request anywhere else leaves without the tokens.
   */
  meshHosts?: string[];
}

/** A minted delegation: hand `token` (or the Delegation) to the delegate, which calls actingFor. */
export declare class Delegation {
  private constructor();
  /** The token the delegate sends in X-MeshGuard-Delegation; not in JSON.stringify. */
  readonly token: string;
  readonly expiresAt: string;
  /** Agent ids, root first, the delegate last. */
  readonly chain: string[];
  readonly scope: string[];
  readonly maxChain: number;
  toJSON(): { expiresAt: string; chain: string[]; scope: string[]; maxChain: number };
}

/** The options for the MCP TypeScript SDK's StreamableHTTPClientTransport. */
export interface McpTransportOptions {
  fetch: (url: string | URL, init?: RequestInit) => Promise<Response>;
  requestInit: RequestInit & { headers: Record<string, string> };
}

export declare class MeshGuard {
  constructor(options: MeshGuardOptions);
  readonly url: string;
  readonly timeoutMs: number;
  readonly retries: number;
  readonly maxRetryWaitMs: number;
  /** The trace this agent's requests carry when no OpenTelemetry span is active. */
  readonly traceId: string;
  /** Asks before acting. Resolves with the decision, allowed or not; rejects when MeshGuard refused the request or could not be asked. */
  check(action: string, options?: CheckOptions): Promise<Decision>;
  /** Resolves with the decision when allowed; rejects with Denied otherwise (ApprovalRequired naming the approval it needs). */
  require(action: string, options?: RequireOptions): Promise<Decision>;
  /**
   * Waits for the approval to be decided (default 5 minutes): resolves with it when approved (ask again);
   * rejects with ApprovalDenied, ApprovalExpired or ApprovalTimeout otherwise. Never an allow.
   */
  waitForApproval(approvalId: string, options?: { timeoutMs?: number }): Promise<Approval>;
  /** Mints a delegation to agent `to` (id or name). A refusal rejects with Denied. */
  delegate(to: string, options: DelegateOptions): Promise<Delegation>;
  /** The same agent, acting for the chain of `delegation`. */
  actingFor(delegation: Delegation | string): MeshGuard;
  /** Authorization, traceparent and, acting for a chain, X-MeshGuard-Delegation. */
  headers(): Record<string, string>;
  /** Wraps fn so that each call first requires `action`; resource and context may be computed from fn's arguments. */
  governed<A extends unknown[], R>(
    action: string,
    fn: (...args: A) => R | Promise<R>,
    options?: { resource?: string | ((...args: A) => string | undefined); context?: Record<string, unknown> | ((...args: A) => Record<string, unknown> | undefined) },
  ): (...args: A) => Promise<R>;
  /** fetch with this agent's headers set on requests to MeshGuard's host and `meshHosts` (not elsewhere); it follows no redirect (the 3xx is returned; `redirect: 'error'` is kept). */
  fetch(input: string | URL | Request, init?: RequestInit): Promise<Response>;
  /**
   * `new StreamableHTTPClientTransport(url, mg.mcpTransportOptions())`: every request carries the agent's
   * headers (the active span's traceparent at the time of the request), and a MeshGuard denial rejects the
   * call with the SDK's McpError (code -32043, MeshGuard's deny body in `data`).
   */
  mcpTransportOptions(): McpTransportOptions;
  toJSON(): { url: string; actingForChain: boolean };
}

export type ErrorKind = 'denied' | 'unauthorized' | 'rate_limited' | 'bad_request' | 'unavailable';

/** Every failure to get an allow. Never holds a token. */
export declare class MeshGuardError extends Error {
  readonly kind: ErrorKind;
  /** The HTTP status MeshGuard answered, if it answered. */
  readonly status?: number;
  /** The decision's reason code, where MeshGuard sent one. */
  readonly reason?: string;
  readonly traceId?: string;
  readonly decisionId?: string;
  /** Seconds to wait before trying again (rate limits, 503). */
  readonly retryAfter?: number;
  /** The denial, when the error is one. */
  readonly decision?: Decision;
  /** The human approval the error is about, and where to follow it. */
  readonly approvalId?: string;
  readonly approvalUrl?: string;
  /** The action MeshGuard refused, when its answer names it (a gateway's deny body). */
  readonly action?: string;
  toJSON(): Record<string, unknown>;
}
export declare class Denied extends MeshGuardError { readonly kind: 'denied'; }
export declare class Unauthorized extends MeshGuardError { readonly kind: 'unauthorized'; }
export declare class RateLimited extends MeshGuardError { readonly kind: 'rate_limited'; }
export declare class BadRequest extends MeshGuardError { readonly kind: 'bad_request'; }
/** MeshGuard could not be asked or its answer could not be read. Never an allow. */
export declare class Unavailable extends MeshGuardError { readonly kind: 'unavailable'; }
/** The action waits on a person's approval: waitForApproval(approvalId), then ask again. */
export declare class ApprovalRequired extends Denied { readonly approvalId: string; }
/** A person denied the approval. */
export declare class ApprovalDenied extends Denied {}
/** The approval expired undecided, or was already used. */
export declare class ApprovalExpired extends Denied {}
/** waitForApproval ended with the approval still pending. */
export declare class ApprovalTimeout extends ApprovalRequired {}
/** Too many approvals pending (429 approval_limit). */
export declare class ApprovalLimit extends RateLimited {}
/**
 * MeshGuard's refusal in a gateway's (or ext_authz's) answer: the SDK's error when the answer
 * carries X-MeshGuard-Decision: deny on an error status (outside audit mode), else null.
 */
export declare function denialFrom(response: Response): Promise<MeshGuardError | null>;
/**
 * fetch refused a request into the mesh that already carries another
 * Authorization or X-MeshGuard-Delegation than the agent's.
 */
export declare class HeaderConflict extends Error { readonly name: 'HeaderConflict'; }
