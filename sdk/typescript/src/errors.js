// The SDK's errors: one class per thing a caller branches on, each carrying
// what MeshGuard said (reason code, trace id, decision id, retry-after).

/** Any failure to get an allow from MeshGuard. */
export class MeshGuardError extends Error {
  /**
   * @param {string} kind
   * @param {string} message
   * @param {{status?: number, reason?: string, traceId?: string, decisionId?: string,
   *   retryAfter?: number, decision?: object, cause?: unknown, approvalId?: string, approvalUrl?: string, action?: string}} [fields]
   */
  constructor(kind, message, fields = {}) {
    super(message, fields.cause === undefined ? undefined : { cause: fields.cause });
    this.name = new.target.name;
    this.kind = kind;
    this.status = fields.status;
    this.reason = fields.reason;
    this.traceId = fields.traceId;
    this.decisionId = fields.decisionId;
    this.retryAfter = fields.retryAfter;
    this.approvalId = fields.approvalId;
    this.approvalUrl = fields.approvalUrl;
    // The action MeshGuard refused, when its answer names it (a gateway's deny body).
    this.action = fields.action;
    // Not enumerable: util.inspect and a logger's walk of the error show
    // what the SDK vouches for, not the whole answer (which may echo a token).
    Object.defineProperty(this, 'decision', { value: fields.decision, enumerable: false, writable: true, configurable: true });
  }

  toJSON() {
    return {
      name: this.name, kind: this.kind, message: this.message, status: this.status, reason: this.reason,
      traceId: this.traceId, decisionId: this.decisionId, retryAfter: this.retryAfter,
      approvalId: this.approvalId, approvalUrl: this.approvalUrl, action: this.action,
    };
  }
}

/** MeshGuard denied the action (403): `decision` holds the denial. */
export class Denied extends MeshGuardError {
  constructor(message, fields) { super('denied', message, fields); }
}

/** The agent's token is missing, invalid, expired or revoked (401). */
export class Unauthorized extends MeshGuardError {
  constructor(message, fields) { super('unauthorized', message, fields); }
}

/** Over a rate limit (429): `retryAfter` says in how many seconds to try again. */
export class RateLimited extends MeshGuardError {
  constructor(message, fields) { super('rate_limited', message, fields); }
}

/** MeshGuard refused the request itself (400): a bad action, context or delegation. */
export class BadRequest extends MeshGuardError {
  constructor(message, fields) { super('bad_request', message, fields); }
}

/**
 * MeshGuard could not be asked, or its answer could not be read: unreachable,
 * timed out, a 5xx, a body that is no decision. Never an allow.
 */
export class Unavailable extends MeshGuardError {
  constructor(message, fields) { super('unavailable', message, fields); }
}

/**
 * The action waits on a person's approval (403 approval_required):
 * `approvalId` names it — `await mg.waitForApproval(e.approvalId)`, then ask again.
 */
export class ApprovalRequired extends Denied {}

/** A person denied the approval the action needed (approval_denied). */
export class ApprovalDenied extends Denied {}

/** The approval expired undecided, or was already used (approval_expired): ask again for a new one. */
export class ApprovalExpired extends Denied {}

/** waitForApproval gave up while the approval was still pending. Never an allow. */
export class ApprovalTimeout extends ApprovalRequired {}

/** The agent has too many approvals pending (429 approval_limit). */
export class ApprovalLimit extends RateLimited {}

const BY_REASON = {
  approval_required: ApprovalRequired, approval_denied: ApprovalDenied, approval_expired: ApprovalExpired, approval_limit: ApprovalLimit,
};

/**
 * The approval error class for `reason` when it refines `base` (Denied,
 * RateLimited), else `base`.
 */
export function refine(base, reason) {
  const cls = Object.hasOwn(BY_REASON, reason ?? '') ? BY_REASON[reason] : undefined;
  return cls !== undefined && cls.prototype instanceof base ? cls : base;
}

/**
 * A request for the mesh already carries another Authorization or
 * X-MeshGuard-Delegation than the agent's: the SDK never replaces a
 * credential the caller set (that would hide a bug), as Go's
 * agent.ErrHeaderConflict and Python's HeaderConflict. The message names the
 * header, never its value.
 */
export class HeaderConflict extends Error {
  constructor(message) {
    super(message);
    this.name = 'HeaderConflict';
  }
}
