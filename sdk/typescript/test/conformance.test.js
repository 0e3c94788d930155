// The SDK conformance table (sdk/conformance/cases.json), run through the
// SDK's public surface against a real `meshguard serve`: one test per case,
// in order (later cases use what earlier ones saved).

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { inspect } from 'node:util';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import {
  ApprovalDenied, ApprovalExpired, ApprovalLimit, ApprovalRequired, ApprovalTimeout, MeshGuard, MeshGuardError, denialFrom,
} from '@meshguard/sdk';
import { admin, answer, closedPort, receiver, repoRoot, startMeshGuard } from './server.js';

const conformance = path.join(repoRoot, 'sdk/conformance');
const table = JSON.parse(readFileSync(path.join(conformance, 'cases.json'), 'utf8'));

// expect.approval: the SDK's approval error of each name.
const APPROVAL_ERRORS = {
  required: ApprovalRequired, denied: ApprovalDenied, expired: ApprovalExpired, timeout: ApprovalTimeout, limit: ApprovalLimit,
};

describe('conformance', () => {
  let server;
  const tokens = new Map(); // agent name → token
  const names = new Map(); // agent id → name
  const saved = new Map(); // save name → Delegation
  const approvals = new Map(); // saveApproval name → approval id
  const cleanups = [];

  before(async () => {
    server = await startMeshGuard(path.join(conformance, 'policies'));
    for (const a of table.agents) {
      const body = { name: a.name, trustTier: a.trustTier, tags: a.tags };
      const created = await admin(server, 'POST', '/admin/agents', body, 201);
      tokens.set(a.name, created.token);
      names.set(created.id, a.name);
      if (a.revoked) await admin(server, 'DELETE', `/admin/agents/${a.name}`, undefined, 200);
    }
  });

  after(async () => {
    for (const c of cleanups) await c();
    await server?.stop();
  });

  // urlFor points the SDK where the case says: the real server, a closed
  // port, or a loopback receiver answering a status or garbage.
  async function urlFor(where, c, secrets) {
    if (where === undefined) return { url: server.url };
    if (where === 'unreachable') return { url: await closedPort() };
    let r;
    if (where === 'answer') {
      r = await receiver(answer(c.answer.status, c.answer.body.replaceAll('$TOKEN', secrets.token).replaceAll('$DELEGATION', secrets.delegation), c.answer.headers));
    } else if (where === 'nested') {
      r = await receiver(answer(200, '['.repeat(100_000) + ']'.repeat(100_000)));
    } else if (where === 'garbage') {
      r = await receiver(answer(200, '{"hello": "this is no decision"}'));
    } else if (/^status:\d{3}$/.test(where)) {
      const status = Number(where.slice('status:'.length));
      r = await receiver(answer(status, { error: 'unavailable', message: 'the conformance receiver says no' }));
    } else {
      throw new Error(`case server ${JSON.stringify(where)}: not understood`);
    }
    cleanups.push(r.close);
    return { url: r.url, answering: where === 'answer' ? r : undefined };
  }

  function sdkFor(c, url) {
    const token = c.as.startsWith('!') ? c.as.slice(1) : tokens.get(c.as);
    assert.ok(token, `no agent ${c.as}`);
    // Short retries: the broken-server cases retry, and a real 429's
    // Retry-After (tens of seconds) is beyond maxRetryWaitMs, so it is returned.
    let mg = new MeshGuard({ url, token, timeoutMs: 10_000, retries: 2, maxRetryWaitMs: 2000 });
    if (c.actingFor !== undefined) {
      const d = saved.get(c.actingFor);
      assert.ok(d, `case ${c.name}: nothing saved as ${c.actingFor}`);
      mg = mg.actingFor(d);
    }
    return mg;
  }

  // whileDeciding runs step; with the case's `then`, it approves or denies
  // the saved approval through the admin API once the step has started
  // (before or during the step's wait, the step's answer is the same).
  async function whileDeciding(c, step) {
    if (c.then === undefined) return step();
    const running = step();
    running.catch(() => {}); // awaited below
    try {
      await admin(server, 'POST', `/admin/approvals/${approvals.get(c.then.approval)}/${c.then.approve ? 'approve' : 'deny'}`, { by: c.then.by }, 200);
    } finally {
      await running.catch(() => {});
    }
    return running;
  }

  async function step(c, mg) {
    switch (c.do) {
      case 'check': return mg.check(c.action, { resource: c.resource, context: c.context, waitSeconds: c.wait });
      case 'require': return mg.require(c.action, { resource: c.resource, context: c.context, waitSeconds: c.wait,
        waitForApprovalMs: c.waitForApproval === undefined ? undefined : c.waitForApproval * 1000 });
      case 'wait': return mg.waitForApproval(approvals.get(c.approval), { timeoutMs: c.timeout * 1000 });
      case 'denial_from': {
        // A plain request (no SDK) to the answer server, as an agent calling through a gateway makes.
        const err = await denialFrom(await fetch(`${mg.url}/proxy/peer/task`));
        if (err !== null) throw err;
        return null;
      }
      case 'delegate': return mg.delegate(c.to, { actions: c.actions, maxDepth: c.maxDepth });
      case 'headers': return mg.headers();
      default: throw new Error(`case ${c.name}: do ${JSON.stringify(c.do)} not understood`);
    }
  }

  function meetsApproval(c, got, err) {
    const e = c.expect;
    const id = err?.approvalId ?? got?.approval_id;
    if (c.saveApproval !== undefined) {
      assert.ok(id, `saveApproval: the step named no approval (${err ?? JSON.stringify(got)})`);
      approvals.set(c.saveApproval, id);
    }
    if (e.approvalId) assert.ok(id, `no approval id surfaced (${err ?? JSON.stringify(got)})`);
    if (e.approval !== undefined) assert.ok(err instanceof APPROVAL_ERRORS[e.approval], `want ${e.approval}, got ${err}`);
    if (e.approvalStatus !== undefined) {
      if (err) throw err;
      assert.equal(got.status, e.approvalStatus);
    }
    if (e.denial === false) {
      if (err) throw err;
      assert.equal(got, null);
    }
  }

  function meets(c, got, err, secrets) {
    const e = c.expect;
    meetsApproval(c, got, err);
    if (e.error !== undefined) {
      assert.ok(err, `want a ${e.error} error, got ${JSON.stringify(got)}`);
      assert.ok(err instanceof MeshGuardError, `want a MeshGuardError, got ${err}`);
      assert.equal(err.kind, e.error, err.message);
      if (e.status !== undefined) assert.equal(err.status, e.status, err.message);
      if (e.reason !== undefined) assert.equal(err.reason, e.reason, err.message);
      if (e.retryAfter) assert.ok(err.retryAfter > 0, `retryAfter ${err.retryAfter}`);
      const forms = [err.message, JSON.stringify(err), inspect(err), String(err), err.traceId ?? '', err.reason ?? ''];
      for (const [i, text] of forms.entries()) {
        for (const secret of [secrets.token, secrets.delegation]) {
          // Not quoted on failure: it is a token.
          assert.ok(!secret || !text.includes(secret), `the error's form ${i} (message, JSON, inspect, String, traceId, reason) shows a token`);
        }
      }
      // Every error names the trace id where MeshGuard sent one.
      if ((err.status !== undefined && c.server === undefined) || c.do === 'wait' || c.do === 'denial_from') {
        assert.match(err.traceId ?? '', /^[0-9a-f]{32}$/, `no trace id in ${err.message}`);
        assert.ok(err.message.includes(err.traceId), err.message);
      }
      return;
    }
    if (err) throw err;
    for (const k of ['allowed', 'reason', 'policy', 'rule']) {
      if (e[k] !== undefined) assert.equal(got[k], e[k], `${k} of ${JSON.stringify(got)}`);
    }
    if (e.chain !== undefined) assert.deepEqual(got.chain.map((id) => names.get(id) ?? id), e.chain);
    if (e.token !== undefined) assert.equal(typeof got.token === 'string' && got.token !== '', e.token);
    if (e.headers !== undefined) {
      const lower = Object.keys(got).map((k) => k.toLowerCase());
      for (const h of e.headers) assert.equal(lower.filter((k) => k === h).length, 1, `header ${h} in ${lower}`);
    }
  }

  for (const c of table.cases) {
    test(c.name, async () => {
      const secrets = {
        token: c.as.startsWith('!') ? c.as.slice(1) : tokens.get(c.as),
        delegation: c.actingFor === undefined ? '' : saved.get(c.actingFor)?.token ?? '',
      };
      const target = await urlFor(c.server, c, secrets);
      const mg = sdkFor(c, target.url);
      for (let i = 0; i < (c.times ?? 1); i++) {
        let got;
        let err;
        try {
          got = await whileDeciding(c, () => step(c, mg));
        } catch (e) {
          err = e;
        }
        meets(c, got, err, secrets);
        if (c.save !== undefined) saved.set(c.save, got);
      }
      if (c.expect.attempts !== undefined) {
        assert.ok(target.answering, 'expect.attempts needs "server": "answer"');
        assert.equal(target.answering.requests.length, c.expect.attempts, 'requests the answer server saw');
      }
    });
  }
});
