// Waiting on a human approval (GET /v1/approvals/{id}, long-polled), and
// reading MeshGuard's refusal in a gateway's or ext_authz's answer
// (docs/sdk.md), the same as the Go and Python SDKs.

import {
  ApprovalDenied, ApprovalExpired, ApprovalTimeout, BadRequest, Denied, RateLimited, Unauthorized, Unavailable, refine,
} from './errors.js';
import { parseStrict } from './answer.js';

const MAX_WAIT_SECONDS = 60; // the server's bound on Prefer: wait and ?wait
const MAX_APPROVAL_WAIT_MS = 24 * 60 * 60 * 1000;
const MAX_DENY_BODY = 1 << 20;
const STATES = new Set(['pending', 'approved', 'denied', 'expired', 'used']);

/** v when it can be an approval id (it goes into a path), else undefined. */
export function approvalIdOf(v) {
  return typeof v === 'string' && /^[A-Za-z0-9_-]{1,128}$/.test(v) ? v : undefined;
}

function traceIdOf(v) { return typeof v === 'string' && /^[0-9a-f]{32}$/.test(v) && !/^0+$/.test(v) ? v : undefined; }

/**
 * The loop behind MeshGuard#waitForApproval: poll(pathAndQuery, holdSeconds)
 * sends one GET and resolves with {status, json, sentTraceId}; errorOf turns
 * an error answer into the SDK's error.
 */
export async function waitLoop(poll, errorOf, approvalId, timeoutMs) {
  const id = approvalIdOf(approvalId);
  if (id === undefined) throw new TypeError('MeshGuard: approvalId must be 1 to 128 letters, digits, _ or -');
  if (!Number.isInteger(timeoutMs) || timeoutMs <= 0 || timeoutMs > MAX_APPROVAL_WAIT_MS) {
    throw new TypeError(`MeshGuard: timeoutMs must be a whole number from 1 to ${MAX_APPROVAL_WAIT_MS}, got ${timeoutMs}`);
  }
  const what = `wait for approval ${id}`;
  const deadline = Date.now() + timeoutMs;
  let traceId;
  for (;;) {
    const remaining = deadline - Date.now();
    if (remaining < 1000) {
      throw new ApprovalTimeout(`MeshGuard: ${what}: still pending when the wait ended${traceId ? ` [trace ${traceId}]` : ''}`,
        { reason: 'approval_required', traceId, approvalId: id });
    }
    const n = Math.min(Math.floor(remaining / 1000), MAX_WAIT_SECONDS);
    const started = Date.now();
    let a;
    try {
      a = await poll(`/v1/approvals/${id}?wait=${n}`, n);
    } catch (e) {
      if (e && typeof e === 'object' && e.approvalId === undefined) e.approvalId = id;
      throw e;
    }
    traceId ??= a.sentTraceId;
    if (a.status !== 200) {
      let err = errorOf(what, a);
      if (a.status === 404) { // no approval of this agent has that id
        err = new BadRequest(err.message, { status: 404, reason: err.reason, traceId: err.traceId });
      }
      err.approvalId ??= id;
      throw err;
    }
    const ap = a.json;
    if (typeof ap !== 'object' || ap === null || Array.isArray(ap) || ap.id !== id || typeof ap.status !== 'string' || !STATES.has(ap.status)) {
      throw new Unavailable(`MeshGuard: ${what}: the answer is not the approval`, { status: 200, traceId, approvalId: id });
    }
    traceId = traceIdOf(ap.traceId) ?? traceId;
    const note = traceId ? ` [trace ${traceId}]` : '';
    switch (ap.status) {
      case 'approved':
        return ap;
      case 'denied':
        throw new ApprovalDenied(`MeshGuard: ${what}: a person denied it${note}`, { reason: 'approval_denied', traceId, approvalId: id });
      case 'expired':
      case 'used':
        throw new ApprovalExpired(`MeshGuard: ${what}: ${ap.status === 'used' ? 'already used' : 'expired undecided'}${note}`,
          { reason: 'approval_expired', traceId, approvalId: id });
      default: { // pending: poll again
        // A server that answers so without holding the poll (a proxy, one
        // shutting down) is polled at most once a second, never in a storm.
        const pause = Math.min(1000 - (Date.now() - started), deadline - Date.now());
        if (pause > 0) await new Promise((resolve) => { setTimeout(resolve, pause); });
      }
    }
  }
}

/**
 * MeshGuard's refusal in the answer (a fetch Response) of a request made
 * through its gateway or an Envoy with its ext_authz: when MeshGuard refused
 * the request (X-MeshGuard-Decision: deny on an error status, outside audit
 * mode), resolves with the SDK's error — ApprovalRequired naming the
 * approval, Denied with the reason and trace id, Unauthorized, RateLimited
 * with retryAfter — else null: an upstream's own 403 is not MeshGuard's.
 * The body is read from a clone, so the caller can still read it.
 * @param {Response} response
 */
export async function denialFrom(response) {
  const h = response?.headers;
  if (!h || typeof h.get !== 'function') return null;
  const status = response.status;
  if ((h.get('x-meshguard-decision') ?? '').trim().toLowerCase() !== 'deny' ||
      (h.get('x-meshguard-mode') ?? '').trim().toLowerCase() === 'audit' || !Number.isInteger(status) || status < 400) {
    return null;
  }
  let json;
  try {
    const text = await response.clone().text();
    json = text.length > MAX_DENY_BODY ? undefined : parseStrict(text);
  } catch {
    json = undefined;
  }
  const j = typeof json === 'object' && json !== null && !Array.isArray(json) ? json : {};
  const str = (v) => (typeof v === 'string' && v !== '' ? v : undefined);
  const ra = h.get('retry-after');
  const retryAfter = ra !== null && /^\d+$/.test(ra.trim()) ? Number(ra.trim())
    : (typeof j.retry_after === 'number' && j.retry_after >= 0 ? Math.ceil(j.retry_after) : undefined);
  const fields = {
    status, reason: str(j.reason), traceId: traceIdOf(j.trace_id) ?? traceIdOf(j.traceId) ?? traceIdOf(h.get('x-meshguard-trace-id')),
    decisionId: str(j.decision_id) ?? str(j.decisionId), retryAfter,
    approvalId: approvalIdOf(h.get('x-meshguard-approval')) ?? approvalIdOf(j.approval_id), approvalUrl: str(j.approval_url),
    action: str(j.action),
  };
  const msg = `MeshGuard: gateway: ${status}${fields.reason ? ` ${fields.reason}` : ''}${str(j.message) ? `: ${j.message}` : ''}` +
    (fields.traceId ? ` [trace ${fields.traceId}]` : '');
  switch (status) {
    case 400: case 413: case 415: case 431: return new BadRequest(msg, fields);
    case 401: return new Unauthorized(msg, fields);
    case 429: return new (refine(RateLimited, fields.reason))(msg, fields);
    default: return status >= 500 ? new Unavailable(msg, fields) : new (refine(Denied, fields.reason))(msg, fields);
  }
}
