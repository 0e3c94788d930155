// @meshguard/sdk: an agent asks MeshGuard before acting (/v1/check), mints a
// delegation when it hands work on (/v1/delegations), and carries its token,
// the trace and the delegation on every request it makes. Fails closed: a
// MeshGuard that could not be asked is an error (Unavailable), never an allow.

import {
  ApprovalDenied, ApprovalExpired, ApprovalLimit, ApprovalRequired, ApprovalTimeout, BadRequest, Denied, HeaderConflict, MeshGuardError,
  RateLimited, Unauthorized, Unavailable, refine,
} from './errors.js';
import { newTraceId, parseTraceparent, traceparent } from './trace.js';
import { decisionOf, parseStrict } from './answer.js';
import { approvalIdOf, denialFrom, waitLoop } from './approval.js';

export {
  ApprovalDenied, ApprovalExpired, ApprovalLimit, ApprovalRequired, ApprovalTimeout, BadRequest, Denied, HeaderConflict, MeshGuardError,
  RateLimited, Unauthorized, Unavailable, denialFrom,
};

const MAX_BODY = 1 << 20; // a decision is a few hundred bytes; anything near this is not one
const MAX_RETRIES = 10;
const BACKOFF_MS = 100;
const DELEGATION_HEADER = 'X-MeshGuard-Delegation';

/** A minted delegation. Its token is kept out of JSON.stringify and console output. */
export class Delegation {
  #token;

  constructor(body) {
    this.#token = body.token;
    this.expiresAt = body.expiresAt;
    this.chain = body.chain;
    this.scope = body.scope;
    this.maxChain = body.maxChain;
  }

  /** The delegation token the delegate sends in X-MeshGuard-Delegation. */
  get token() { return this.#token; }

  toJSON() { return { expiresAt: this.expiresAt, chain: this.chain, scope: this.scope, maxChain: this.maxChain }; }
}

/** An agent's connection to MeshGuard. */
export class MeshGuard {
  #token;
  #delegation;
  #traceId;
  #meshHosts;

  /**
   * @param {{url: string, token: string, timeoutMs?: number, retries?: number,
   *   maxRetryWaitMs?: number, traceparent?: string}} options
   */
  constructor(options) {
    const o = options ?? {};
    let url;
    try {
      url = new URL(o.url);
    } catch {
      throw new TypeError(`MeshGuard: url ${JSON.stringify(String(o.url))} is not a URL`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new TypeError(`MeshGuard: url must be http or https, got ${url.protocol}`);
    }
    if (url.username !== '' || url.password !== '' || url.search !== '' || url.hash !== '') {
      throw new TypeError('MeshGuard: url must be http(s)://host[:port][/prefix] without credentials, query or fragment');
    }
    this.url = url.href.replace(/\/+$/, '');
    if (o.meshHosts !== undefined && !Array.isArray(o.meshHosts)) throw new TypeError('MeshGuard: meshHosts must be a list of host:port');
    this.#meshHosts = new Set([hostPort(url), ...(o.meshHosts ?? []).map(meshHost)]);
    checkToken('token', o.token);
    this.#token = o.token;
    this.timeoutMs = intOption('timeoutMs', o.timeoutMs, 5000, 1, 600_000);
    this.retries = intOption('retries', o.retries, 2, 0, MAX_RETRIES);
    this.maxRetryWaitMs = intOption('maxRetryWaitMs', o.maxRetryWaitMs, 5000, 0, 600_000);
    let traceId;
    if (o.traceparent !== undefined) {
      const tp = parseTraceparent(o.traceparent);
      if (!tp) throw new TypeError('MeshGuard: traceparent is not a W3C traceparent (<version>-<32 hex>-<16 hex>-<2 hex>, lower-case hex, version 00 exactly 55 characters)');
      traceId = tp.traceId;
    }
    this.#traceId = traceId ?? newTraceId();
  }

  /**
   * A MeshGuard acting for a delegation chain: same agent, same trace, and
   * the delegation token on every request.
   * @param {Delegation | string} delegation
   */
  actingFor(delegation) {
    const token = typeof delegation === 'string' ? delegation : delegation?.token;
    checkToken('delegation', token);
    const mg = new MeshGuard({ url: this.url, token: this.#token, timeoutMs: this.timeoutMs, retries: this.retries,
      maxRetryWaitMs: this.maxRetryWaitMs });
    mg.#meshHosts = this.#meshHosts;
    mg.#traceId = this.#traceId;
    mg.#delegation = token;
    return mg;
  }

  /** The trace id this agent's requests carry when no OpenTelemetry span is active. */
  get traceId() { return this.#traceId; }

  /** The headers for an outgoing request: Authorization, traceparent and, acting for a chain, the delegation. */
  headers() {
    const h = { Authorization: `Bearer ${this.#token}`, traceparent: traceparent(this.#traceId) };
    if (this.#delegation !== undefined) h[DELEGATION_HEADER] = this.#delegation;
    return h;
  }

  /**
   * Asks MeshGuard whether this agent may do `action`. A denial is a Decision
   * (allowed: false); an error means MeshGuard said no to the request itself
   * or could not be asked.
   */
  //
  // With waitSeconds (1 to 60), MeshGuard holds the answer of a request that
  // needs a person's approval until it is decided (Prefer: wait): the
  // answer is the final decision.
  async check(action, { resource, context, waitSeconds } = {}) {
    if (waitSeconds !== undefined && (!Number.isInteger(waitSeconds) || waitSeconds < 1 || waitSeconds > 60)) {
      throw new TypeError(`MeshGuard: waitSeconds must be a whole number from 1 to 60, got ${waitSeconds}`);
    }
    const body = { action };
    if (resource !== undefined) body.resource = resource;
    if (context !== undefined) body.context = context;
    const what = `check ${JSON.stringify(String(action))}`;
    const { status, json, sentTraceId } = await this.#call('POST', '/v1/check', body, what,
      { retryAnswers: true, holdSeconds: waitSeconds ?? 0, prefer: waitSeconds !== undefined });
    if (status === 200 || status === 403) {
      // Only a 200 that is an allow is an allow; anything inconsistent is unreadable.
      const d = decisionOf(json, status);
      if (d === undefined) {
        throw new Unavailable(`MeshGuard: ${what}: answer ${status} is not a decision`, { status });
      }
      // The approval a denial waits on, under the camelCase names of the
      // decision's other fields and of ApprovalRequired (the wire says approval_id).
      const approvalId = approvalIdOf(d.approval_id);
      if (approvalId !== undefined) {
        d.approvalId = approvalId;
        if (str(d.approval_url) !== undefined) d.approvalUrl = d.approval_url;
      }
      return d;
    }
    throw this.#error(what, status, json, sentTraceId);
  }

  /**
   * Like check, but a denial rejects with Denied. A request that needs a
   * person's approval rejects with ApprovalRequired naming it (approvalId);
   * with waitForApprovalMs, require waits for that approval and asks again, once.
   */
  async require(action, opts = {}) {
    const { waitForApprovalMs, ...checkOpts } = opts ?? {};
    try {
      return await this.#require(action, checkOpts);
    } catch (e) {
      if (waitForApprovalMs === undefined || !(e instanceof ApprovalRequired) || !e.approvalId) throw e;
      await this.waitForApproval(e.approvalId, { timeoutMs: waitForApprovalMs });
    }
    return this.#require(action, checkOpts);
  }

  async #require(action, opts) {
    const d = await this.check(action, opts);
    if (!d.allowed) {
      const Cls = refine(Denied, d.reason);
      throw new Cls(this.#scrub(`MeshGuard: ${JSON.stringify(String(action))} denied (${d.reason}): ${d.message ?? ''}` + traceNote(d.traceId)),
        { status: d.status ?? 403, reason: this.#scrub(d.reason), traceId: traceIdOf(d.traceId) ?? traceIdOf(d.trace_id), decisionId: str(d.decisionId) && this.#scrub(d.decisionId), decision: d,
          approvalId: approvalIdOf(str(d.approval_id) && this.#scrub(d.approval_id)), approvalUrl: str(d.approval_url) && this.#scrub(d.approval_url) });
    }
    return d;
  }

  /**
   * Waits until the approval `approvalId` is decided, long-polling
   * GET /v1/approvals/{id} for at most timeoutMs (default 5 minutes).
   * Approved, it resolves with the approval: ask again, and MeshGuard allows
   * that request once. Rejects with ApprovalDenied, ApprovalExpired (expired
   * or already used), ApprovalTimeout (still pending), or any call's error.
   */
  async waitForApproval(approvalId, { timeoutMs = 300_000 } = {}) {
    const poll = (pathAndQuery, holdSeconds) => this.#call('GET', pathAndQuery, undefined, `wait for approval ${approvalId}`,
      { idempotent: true, holdSeconds });
    return waitLoop(poll, (what, a) => this.#error(what, a.status, a.json, a.sentTraceId), approvalId, timeoutMs);
  }

  /**
   * Mints a delegation to agent `to` (id or name) for `actions`.
   * @returns {Promise<Delegation>}
   */
  async delegate(to, { actions, maxDepth, ttl } = {}) {
    const body = { delegate: to, actions };
    if (maxDepth !== undefined) body.maxDepth = maxDepth;
    if (ttl !== undefined) body.ttl = ttl;
    const what = `delegate to ${JSON.stringify(String(to))}`;
    // Not retried after an answer: a proxy's 503 may follow a mint, and a second attempt would mint twice.
    const { status, json, sentTraceId } = await this.#call('POST', '/v1/delegations', body, what, { retryAnswers: false });
    if (status === 201) {
      if (!isObject(json) || typeof json.token !== 'string' || json.token === '' || !Array.isArray(json.chain)) {
        throw new Unavailable(`MeshGuard: ${what}: answer 201 is not a delegation`, { status });
      }
      return new Delegation(json);
    }
    throw this.#error(what, status, json, sentTraceId);
  }

  /**
   * Wraps fn: each call first requires `action` (resource and context may be
   * functions of fn's arguments), then runs fn.
   */
  governed(action, fn, { resource, context } = {}) {
    if (typeof fn !== 'function') throw new TypeError('MeshGuard.governed: fn must be a function');
    return async (...args) => {
      await this.require(action, {
        resource: typeof resource === 'function' ? resource(...args) : resource,
        context: typeof context === 'function' ? context(...args) : context,
      });
      return fn(...args);
    };
  }

  /**
   * fetch, with this agent's headers set on the request. It follows no
   * redirect (the 3xx is returned, as Go's HTTPClient does; `redirect:
   * 'error'` is kept): fetch would carry X-MeshGuard-Delegation (and, to the
   * same origin, the token) to wherever Location points.
   */
  fetch(input, init) {
    const headers = new Headers(init?.headers ?? (input instanceof Request ? input.headers : undefined));
    const target = new URL(input instanceof Request ? input.url : input);
    if (!this.#meshHosts.has(hostPort(target))) {
      // Not the mesh: the request leaves without the agent's credentials
      // (requestInit of mcpTransportOptions may hold them).
      const ours = this.headers();
      for (const k of ['Authorization', DELEGATION_HEADER]) {
        if (ours[k] !== undefined && headers.get(k) === ours[k]) headers.delete(k);
      }
      return globalThis.fetch(input, { ...init, headers });
    }
    // A credential the caller set is not replaced (that would hide a bug);
    // a traceparent the caller set is kept.
    const ours = this.headers();
    for (const k of ['Authorization', DELEGATION_HEADER]) {
      const have = headers.get(k);
      if (have !== null && have !== ours[k]) {
        return Promise.reject(new HeaderConflict(`MeshGuard: ${init?.method ?? 'GET'} ${target.origin}: the request already carries another ${k} than the agent's`));
      }
    }
    if (headers.has('traceparent')) delete ours.traceparent;
    for (const [k, v] of Object.entries(ours)) headers.set(k, v);
    const redirect = init?.redirect === 'error' ? 'error' : 'manual';
    return globalThis.fetch(input, { ...init, headers, redirect });
  }

  /**
   * Options for the MCP TypeScript SDK's StreamableHTTPClientTransport:
   * `new StreamableHTTPClientTransport(url, mg.mcpTransportOptions())`.
   * `fetch` sets fresh headers on every request and hands MeshGuard's
   * JSON-RPC denials to the SDK as JSON-RPC errors (mcpDenial); `requestInit`
   * carries the credentials for SDK versions without the fetch option, but
   * no traceparent: the SDK copies requestInit's headers onto every request,
   * and a traceparent frozen here would hide the active span's.
   */
  mcpTransportOptions() {
    const { traceparent: _, ...credentials } = this.headers();
    return { fetch: async (url, init) => mcpDenial(await this.fetch(url, init)), requestInit: { headers: credentials } };
  }

  toJSON() { return { url: this.url, actingForChain: this.#delegation !== undefined }; }

  [Symbol.for('nodejs.util.inspect.custom')]() { return `MeshGuard ${JSON.stringify(this.toJSON())}`; }

  // #call sends one call, retrying what is safe, and returns the last answer.
  // The rule, the same in every SDK (docs/sdk.md): a refused connection is
  // retried (nothing reached a server); with retryAnswers, so are a 503 and a
  // 429 that names its wait (MeshGuard always names one: a 429 without is a
  // proxy's, returned at once); an idempotent GET also on any failure to be
  // answered and any 5xx. A wait of 0 is the backoff, never a hot loop; one
  // over maxRetryWaitMs is returned to the caller. holdSeconds is how long
  // MeshGuard may hold the answer (a long poll): it lengthens the timeout.
  async #call(method, path, body, what, { retryAnswers = false, idempotent = false, holdSeconds = 0, prefer = false } = {}) {
    const timeoutMs = this.timeoutMs + holdSeconds * 1000;
    for (let attempt = 0; ; attempt++) {
      let res;
      const headers = { ...this.headers(), Accept: 'application/json' };
      if (body !== undefined) headers['Content-Type'] = 'application/json';
      if (prefer) headers.Prefer = `wait=${holdSeconds}`;
      try {
        res = await globalThis.fetch(this.url + path, {
          method,
          headers,
          body: body === undefined ? undefined : JSON.stringify(body),
          signal: AbortSignal.timeout(timeoutMs),
          redirect: 'error',
        });
      } catch (err) {
        const refused = err?.cause?.code === 'ECONNREFUSED';
        if ((refused || idempotent) && attempt < this.retries) {
          await sleep(backoff(attempt));
          continue;
        }
        const why = err?.name === 'TimeoutError' ? `no answer in ${timeoutMs} ms`
          : refused ? 'connection refused' : `could not be reached (${err?.cause?.code ?? err?.cause?.message ?? err?.message ?? 'error'})`;
        throw new Unavailable(`MeshGuard: ${what}: ${why}`, { cause: err });
      }
      let json;
      try {
        json = parseStrict(await readBounded(res));
      } catch {
        json = undefined;
      }
      const retryAfter = retryAfterSeconds(res, json);
      const wait = Math.max((retryAfter ?? 0) * 1000, backoff(attempt));
      const retryStatus = res.status === 503 || (res.status === 429 && retryAfter !== undefined) || (idempotent && res.status >= 500);
      if ((retryAnswers || idempotent) && retryStatus && attempt < this.retries && wait <= this.maxRetryWaitMs) {
        await sleep(wait);
        continue;
      }
      if (retryAfter !== undefined && isObject(json)) json.retryAfter = retryAfter;
      const approval = approvalIdOf(res.headers.get('x-meshguard-approval'));
      if (approval !== undefined && isObject(json) && json.approval_id === undefined) json.approval_id = approval;
      // The trace MeshGuard recorded this under: the answer's, else the one sent.
      const sentTraceId = parseTraceparent(headers.traceparent)?.traceId;
      return { status: res.status, json, sentTraceId };
    }
  }

  #error(what, status, json, sentTraceId) {
    const j = isObject(json) ? json : {};
    // What the answer says is scrubbed of the tokens, and a trace id is
    // taken from it only when it is one (else the one sent names the call).
    const scrubbed = (v) => (str(v) === undefined ? undefined : this.#scrub(v));
    const fields = {
      status, reason: scrubbed(j.reason), traceId: traceIdOf(j.traceId) ?? traceIdOf(j.trace_id) ?? sentTraceId, decisionId: scrubbed(j.decisionId),
      retryAfter: typeof j.retryAfter === 'number' ? j.retryAfter : undefined, decision: isDecision(j) ? j : undefined,
      approvalId: approvalIdOf(scrubbed(j.approval_id)), approvalUrl: scrubbed(j.approval_url), action: scrubbed(j.action),
    };
    const said = `${status}${fields.reason ? ` ${fields.reason}` : ''}${str(j.message) ? `: ${j.message}` : ''}`;
    const msg = this.#scrub(`MeshGuard: ${what}: ${said}${traceNote(fields.traceId)}`);
    switch (status) {
      case 400: case 413: case 415: case 431: return new BadRequest(msg, fields);
      case 401: return new Unauthorized(msg, fields);
      case 403: return new (refine(Denied, fields.reason))(msg, fields);
      case 429: return new (refine(RateLimited, fields.reason))(msg, fields);
      default: return new Unavailable(msg, fields);
    }
  }

  // #scrub keeps the tokens out of a message, whatever the answer echoed.
  #scrub(msg) {
    let m = msg.split(this.#token).join('[token]');
    if (this.#delegation !== undefined) m = m.split(this.#delegation).join('[delegation]');
    return m;
  }
}

function checkToken(name, token) {
  if (typeof token !== 'string' || token === '') throw new TypeError(`MeshGuard: ${name} must be a non-empty string`);
  // A header value cannot hold control characters or spaces; say so without echoing it.
  if (/[\s\x00-\x1f\x7f]/.test(token)) throw new TypeError(`MeshGuard: ${name} holds whitespace or a control character`);
  // As the Go and Python SDKs: visible ASCII, at most 16 KiB.
  if (/[^\x21-\x7e]/.test(token)) throw new TypeError(`MeshGuard: ${name} holds a character that is not visible ASCII`);
  if (token.length > 16 * 1024) throw new TypeError(`MeshGuard: ${name} is longer than 16 KiB`);
}

// hostPort is a URL's host:port, the port spelled out.
function hostPort(u) {
  return `${u.hostname.toLowerCase()}:${u.port || (u.protocol === 'https:' ? '443' : '80')}`;
}

function meshHost(h) {
  let u;
  try {
    u = new URL(String(h).includes('://') ? String(h) : `http://${h}`);
  } catch {
    u = undefined;
  }
  if (!u || (u.protocol !== 'http:' && u.protocol !== 'https:') || u.hostname === '') {
    throw new TypeError(`MeshGuard: meshHosts: ${JSON.stringify(String(h).slice(0, 64))} is not host[:port] or an http(s) URL`);
  }
  return hostPort(u);
}

function intOption(name, v, def, lo, hi) {
  if (v === undefined) return def;
  if (!Number.isInteger(v) || v < lo || v > hi) throw new TypeError(`MeshGuard: ${name} must be a whole number from ${lo} to ${hi}, got ${v}`);
  return v;
}

function isObject(v) { return typeof v === 'object' && v !== null && !Array.isArray(v); }

function isDecision(v) {
  return isObject(v) && typeof v.allowed === 'boolean' && typeof v.decision === 'string' && typeof v.reason === 'string';
}

function str(v) { return typeof v === 'string' && v !== '' ? v : undefined; }

// traceIdOf is v when it is a W3C trace id (32 lower-case hex digits, not all zero).
function traceIdOf(v) { return typeof v === 'string' && /^[0-9a-f]{32}$/.test(v) && !/^0+$/.test(v) ? v : undefined; }

function traceNote(traceId) { return traceId ? ` [trace ${traceId}]` : ''; }

// backoff: 100 ms doubling, at most 1.6 s, as the other SDKs.
function backoff(attempt) { return BACKOFF_MS * 2 ** Math.min(attempt, 4); }

function sleep(ms) { return new Promise((resolve) => setTimeout(resolve, ms)); }

// retryAfterSeconds reads Retry-After (seconds or an HTTP date), else the body's retry_after.
function retryAfterSeconds(res, json) {
  const h = res.headers.get('retry-after');
  if (h !== null) {
    const s = /^\d+$/.test(h.trim()) ? Number(h.trim()) : (Date.parse(h) - Date.now()) / 1000;
    if (Number.isFinite(s)) return Math.max(0, Math.ceil(s));
  }
  const b = isObject(json) ? (json.retry_after ?? json.retryAfter) : undefined;
  return typeof b === 'number' && Number.isFinite(b) && b >= 0 ? Math.ceil(b) : undefined;
}

// readBounded reads the answer's body, refusing more than MAX_BODY bytes.
async function readBounded(res) {
  if (!res.body) return '';
  const reader = res.body.getReader();
  const chunks = [];
  let n = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    n += value.byteLength;
    if (n > MAX_BODY) {
      await reader.cancel();
      throw new Error('answer too large');
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}

// mcpDenial turns MeshGuard's denial of a JSON-RPC POST (a 4xx whose body is
// a JSON-RPC error for the request's id, docs/mcp.md#denials) into a 200
// carrying that error: the MCP TypeScript SDK reads no body of a 4xx, so the
// caller would get an HTTP error without the code and reason. It stays an
// error either way (McpError); an answer that is not such a denial, or an
// error with id null (the SDK could match it to no request), passes as it is.
async function mcpDenial(res) {
  if (res.status < 400 || res.status > 499 || res.headers.get('x-meshguard-decision') !== 'deny' ||
      !/^application\/json\b/i.test(res.headers.get('content-type') ?? '')) return res;
  let text = '';
  let json;
  try {
    text = await readBounded(res);
    json = parseStrict(text);
  } catch {
    json = undefined;
  }
  const rpcError = isObject(json) && json.jsonrpc === '2.0' && (typeof json.id === 'string' || typeof json.id === 'number') &&
    isObject(json.error) && Number.isInteger(json.error.code) && typeof json.error.message === 'string';
  return new Response(text, { status: rpcError ? 200 : res.status, statusText: rpcError ? 'OK' : res.statusText, headers: res.headers });
}
