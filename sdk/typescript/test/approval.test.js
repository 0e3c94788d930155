// Contract tests: waiting on a human approval and reading a gateway's
// refusal, against a loopback HTTP server answering as docs/api.md's
// approval contract says (GET /v1/approvals/{id} with ?wait, POST /v1/check
// with Prefer: wait, a 403 approval_required naming the approval). The
// conformance table runs the same behaviour against the real meshguard serve.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import {
  ApprovalDenied, ApprovalExpired, ApprovalLimit, ApprovalRequired, ApprovalTimeout, BadRequest, Denied, MeshGuard, RateLimited,
  Unauthorized, denialFrom,
} from '@meshguard/sdk';
import { receiver } from './server.js';

const TOKEN = 'eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJhZ2VudF90ZXN0In0.c2lnbmF0dXJlLXNlY3JldA';
const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';

// approvals keeps approvals as the contract does; a decision wakes every held request.
function approvals() {
  const status = new Map();
  const waiters = new Set();
  const s = {
    status, waits: [], prefer: [],
    decide(id, st) {
      status.set(id, st);
      for (const w of [...waiters]) w();
    },
    // hold resolves once id is not pending, or after seconds.
    hold(id, seconds) {
      return new Promise((resolve) => {
        if (status.get(id) !== 'pending' || seconds === 0) return resolve(status.get(id));
        const done = () => { clearTimeout(t); waiters.delete(wake); resolve(status.get(id)); };
        const wake = () => { if (status.get(id) !== 'pending') done(); };
        const t = setTimeout(done, seconds * 1000);
        waiters.add(wake);
      });
    },
  };
  s.handler = async (req, res) => {
    const send = (code, body, headers = {}) => {
      res.writeHead(code, { 'Content-Type': 'application/json', ...headers });
      res.end(JSON.stringify(body));
    };
    const u = new URL(req.url, 'http://x');
    if (req.method === 'GET') {
      const id = u.pathname.split('/').pop();
      const n = Number(u.searchParams.get('wait'));
      if (!Number.isInteger(n) || n < 1 || n > 60) return send(400, { error: 'bad_request', message: 'wait: want 1 to 60 seconds' });
      s.waits.push(n);
      const st = await s.hold(id, n);
      if (st === undefined) return send(404, { error: 'not_found', reason: 'not_found' });
      return send(200, { id, status: st, action: `approve:${id}`, agentId: 'agt_1', createdAt: '2026-12-06T10:00:00Z', expiresAt: '2026-12-07T10:00:00Z', traceId: TRACE });
    }
    const id = JSON.parse(req.body).action.split(':')[1];
    const prefer = req.headers.prefer;
    s.prefer.push(prefer);
    if (!status.has(id)) status.set(id, 'pending');
    let st = status.get(id);
    const extra = {};
    if (prefer?.startsWith('wait=')) {
      st = await s.hold(id, Number(prefer.slice(5)));
      extra['Preference-Applied'] = prefer;
    }
    if (st === 'approved') {
      status.set(id, 'used');
      return send(200, { decision: 'allow', allowed: true, status: 200, reason: 'approval_granted', traceId: TRACE, chain: [] }, extra);
    }
    const reason = { denied: 'approval_denied', expired: 'approval_expired' }[st] ?? 'approval_required';
    return send(403, { decision: 'deny', allowed: false, status: 403, error: 'forbidden', reason, trace_id: TRACE,
      approval_id: id, approval_url: `/v1/approvals/${id}`, chain: [] }, { ...extra, 'X-MeshGuard-Approval': id });
  };
  return s;
}

async function contract(t) {
  const s = approvals();
  const r = await receiver((req, res) => {
    req.body = r.requests[r.requests.length - 1].body;
    s.handler(req, res);
  });
  t.after(r.close);
  return { s, mg: new MeshGuard({ url: r.url, token: TOKEN, timeoutMs: 1000 }) };
}

// until polls for a condition that will become true, with a generous deadline.
async function until(cond, what) {
  const deadline = Date.now() + 10_000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`never: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('contract: approvals', () => {
  test('approval_required is its own error, naming the approval', async (t) => {
    const { mg } = await contract(t);
    const d = await mg.check('approve:apr_1');
    assert.equal(d.allowed, false);
    assert.equal(d.approval_id, 'apr_1');
    assert.deepEqual([d.approvalId, d.approvalUrl], ['apr_1', '/v1/approvals/apr_1'], 'the camelCase names, as on ApprovalRequired');
    const e = await mg.require('approve:apr_1').then(() => assert.fail('allowed'), (err) => err);
    assert.ok(e instanceof ApprovalRequired && e instanceof Denied && !(e instanceof ApprovalTimeout), String(e));
    assert.deepEqual([e.approvalId, e.approvalUrl, e.reason, e.traceId, e.kind], ['apr_1', '/v1/approvals/apr_1', 'approval_required', TRACE, 'denied']);
  });

  const cases = [
    { name: 'approved resolves with the approval', decision: 'approved' },
    { name: 'denied rejects with ApprovalDenied', decision: 'denied', want: ApprovalDenied },
    { name: 'expired rejects with ApprovalExpired', decision: 'expired', want: ApprovalExpired },
    { name: 'used rejects with ApprovalExpired', decision: 'used', want: ApprovalExpired },
    { name: 'pending at the deadline rejects with ApprovalTimeout', want: ApprovalTimeout },
  ];
  for (const c of cases) {
    test(`waitForApproval: ${c.name}`, async (t) => {
      const { s, mg } = await contract(t);
      await mg.check('approve:apr_w');
      if (c.decision) until(() => s.waits.length > 0, 'a poll').then(() => s.decide('apr_w', c.decision));
      const p = mg.waitForApproval('apr_w', { timeoutMs: c.decision ? 30_000 : 1500 });
      if (!c.want) {
        const ap = await p;
        assert.deepEqual([ap.id, ap.status], ['apr_w', 'approved']);
        return;
      }
      const e = await p.then(() => assert.fail('resolved'), (err) => err);
      assert.ok(e instanceof c.want, String(e));
      assert.equal(e.approvalId, 'apr_w');
      if (c.want === ApprovalTimeout) assert.ok(e instanceof ApprovalRequired);
    });
  }

  test('waitForApproval bounds each poll and refuses bad ids before sending', async (t) => {
    const { s, mg } = await contract(t);
    for (const bad of ['', 'apr/../x', 'a'.repeat(200), 'apr 1', undefined]) {
      await assert.rejects(mg.waitForApproval(bad), TypeError);
    }
    assert.equal(s.waits.length, 0, 'a refused id reached the server');
    await assert.rejects(mg.waitForApproval('apr_unknown', { timeoutMs: 5000 }), BadRequest);
    await mg.check('approve:apr_b');
    await assert.rejects(mg.waitForApproval('apr_b', { timeoutMs: 2500 }), ApprovalTimeout);
    for (const n of s.waits.slice(1)) assert.ok(n >= 1 && n <= 2, `a poll asked to wait ${n} s with at most 2.5 s left`);
  });

  test('check with waitSeconds sends Prefer and answers the final decision; require waits in one call', async (t) => {
    const { s, mg } = await contract(t);
    await mg.check('approve:apr_p');
    // The wait (3 s) outlasts the client's timeout (1 s): held, not cut off.
    until(() => s.prefer.length === 2, 'the held check').then(() => setTimeout(() => s.decide('apr_p', 'approved'), 1500));
    const d = await mg.check('approve:apr_p', { waitSeconds: 3 });
    assert.deepEqual([d.allowed, d.reason, s.prefer[1]], [true, 'approval_granted', 'wait=3']);
    for (const bad of [0, 61, 1.5]) await assert.rejects(mg.check('approve:apr_p', { waitSeconds: bad }), TypeError);

    await mg.check('approve:apr_r');
    const base = s.waits.length;
    until(() => s.waits.length > base, 'a poll').then(() => s.decide('apr_r', 'approved'));
    const r = await mg.require('approve:apr_r', { waitForApprovalMs: 30_000 });
    assert.equal(r.reason, 'approval_granted');
  });
});

describe('denialFrom', () => {
  const deny = { 'X-MeshGuard-Decision': 'deny', 'X-MeshGuard-Trace-Id': TRACE };
  const cases = [
    { name: "a policy's denial", status: 403, headers: deny, body: { reason: 'delegation_ceiling' }, want: Denied, fields: { reason: 'delegation_ceiling', traceId: TRACE, status: 403 } },
    { name: 'an approval named by the header', status: 403, headers: { ...deny, 'X-MeshGuard-Approval': 'apr_9' }, body: { reason: 'approval_required', approval_url: '/v1/approvals/apr_9' },
      want: ApprovalRequired, fields: { approvalId: 'apr_9', approvalUrl: '/v1/approvals/apr_9' } },
    { name: 'an approval named by the body', status: 403, headers: deny, body: { reason: 'approval_required', approval_id: 'apr_8' }, want: ApprovalRequired, fields: { approvalId: 'apr_8' } },
    { name: 'a revoked caller', status: 401, headers: deny, body: { reason: 'agent_revoked' }, want: Unauthorized, fields: { reason: 'agent_revoked' } },
    { name: 'a rate limit', status: 429, headers: { ...deny, 'Retry-After': '7' }, body: { reason: 'rate_limited' }, want: RateLimited, fields: { retryAfter: 7 } },
    { name: 'too many approvals', status: 429, headers: { ...deny, 'Retry-After': '7' }, body: { reason: 'approval_limit' }, want: ApprovalLimit, fields: {} },
    { name: "an upstream's own 403", status: 403, headers: {}, body: { reason: 'rule_deny' }, want: null },
    { name: 'an allow', status: 200, headers: { 'X-MeshGuard-Decision': 'allow' }, body: {}, want: null },
    { name: 'audit mode lets a deny through', status: 404, headers: { 'X-MeshGuard-Decision': 'deny', 'X-MeshGuard-Mode': 'audit' }, body: {}, want: null },
  ];
  for (const c of cases) {
    test(c.name, async () => {
      const res = new Response(JSON.stringify(c.body), { status: c.status, headers: c.headers });
      const e = await denialFrom(res);
      if (c.want === null) {
        assert.equal(e, null);
      } else {
        assert.ok(e instanceof c.want, String(e));
        for (const [k, v] of Object.entries(c.fields)) assert.equal(e[k], v, k);
      }
      assert.deepEqual(await res.json(), c.body, 'the body is still readable');
    });
  }
});
