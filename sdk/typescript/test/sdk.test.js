// Unit tests of the SDK against real loopback HTTP receivers: headers and
// the trace, failing closed, what is retried, and tokens kept out of sight.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { inspect } from 'node:util';
import { describe, test } from 'node:test';

import { context, trace, TraceFlags } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';

import { BadRequest, Denied, HeaderConflict, MeshGuard, MeshGuardError, RateLimited, Unauthorized, Unavailable } from '@meshguard/sdk';
import { answer, closedPort, receiver, repoRoot } from './server.js';

const TOKEN = 'eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJhZ2VudF90ZXN0In0.c2lnbmF0dXJlLXNlY3JldA';
const DELEGATION = 'eyJhbGciOiJFZERTQSJ9.eyJkZWxlZ2F0aW9uIjp0cnVlfQ.ZGVsZWdhdGlvbi1zZWNyZXQ';
const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/;

function decision(allowed, extra = {}) {
  return {
    decision: allowed ? 'allow' : 'deny', allowed, status: allowed ? 200 : 403, reason: allowed ? 'rule_allow' : 'rule_deny',
    message: allowed ? 'allowed' : 'denied', decisionId: 'dec_1', traceId: 'a'.repeat(32), chain: ['agent_x'], ...extra,
  };
}

async function serve(t, handler) {
  const r = await receiver(handler);
  t.after(r.close);
  return r;
}

describe('headers', () => {
  const mg = new MeshGuard({ url: 'http://127.0.0.1:3100', token: TOKEN });
  const tests = [
    { name: 'an agent on its own', sdk: mg, want: ['Authorization', 'traceparent'] },
    { name: 'acting for a chain', sdk: mg.actingFor(DELEGATION), want: ['Authorization', 'traceparent', 'X-MeshGuard-Delegation'] },
  ];
  for (const tt of tests) {
    test(tt.name, () => {
      const h = tt.sdk.headers();
      assert.deepEqual(Object.keys(h).sort(), [...tt.want].sort());
      assert.equal(h.Authorization, `Bearer ${TOKEN}`);
      assert.match(h.traceparent, TRACEPARENT);
      if (tt.want.includes('X-MeshGuard-Delegation')) assert.equal(h['X-MeshGuard-Delegation'], DELEGATION);
    });
  }

  test('one trace per agent, a new span per request, kept when acting for a chain', () => {
    const [, t1, s1] = TRACEPARENT.exec(mg.headers().traceparent);
    const [, t2, s2] = TRACEPARENT.exec(mg.headers().traceparent);
    const [, t3] = TRACEPARENT.exec(mg.actingFor(DELEGATION).headers().traceparent);
    assert.equal(t1, mg.traceId);
    assert.equal(t2, t1);
    assert.equal(t3, t1);
    assert.notEqual(s2, s1);
    const other = new MeshGuard({ url: 'http://127.0.0.1:3100', token: TOKEN });
    assert.notEqual(other.traceId, mg.traceId);
  });

  test('an incoming traceparent is continued', () => {
    const incoming = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    const sdk = new MeshGuard({ url: 'http://127.0.0.1:3100', token: TOKEN, traceparent: incoming });
    assert.equal(TRACEPARENT.exec(sdk.headers().traceparent)[1], '4bf92f3577b34da6a3ce929d0e0e4736');
  });

  test("the active OpenTelemetry span's trace, on the headers and on the wire", async (t) => {
    const cm = new AsyncLocalStorageContextManager().enable();
    context.setGlobalContextManager(cm);
    t.after(() => context.disable());
    const r = await serve(t, answer(200, decision(true)));
    const sdk = new MeshGuard({ url: r.url, token: TOKEN });
    const sc = { traceId: '0af7651916cd43dd8448eb211c80319c', spanId: 'b7ad6b7169203331', traceFlags: TraceFlags.SAMPLED };
    const want = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    await context.with(trace.setSpanContext(context.active(), sc), async () => {
      assert.equal(sdk.headers().traceparent, want);
      await sdk.check('read:papers');
    });
    assert.equal(r.requests[0].headers.traceparent, want);
    // Outside the span, the agent's own trace again.
    assert.equal(TRACEPARENT.exec(sdk.headers().traceparent)[1], sdk.traceId);
  });
});

describe('fails closed', () => {
  const tests = [
    { name: '200 whose allowed is no boolean', handler: answer(200, decision(true, { allowed: 'yes' })) },
    { name: '403 that says allowed', handler: answer(403, decision(true)) },
    { name: '200 that is not JSON', handler: answer(200, 'allowed') },
    { name: '200 with an empty body', handler: answer(200, '') },
    { name: '200 larger than any decision', handler: answer(200, JSON.stringify({ ...decision(true), pad: 'x'.repeat(2 << 20) })) },
    { name: '500', handler: answer(500, { error: 'internal' }), status: 500 },
    { name: '404 (not MeshGuard)', handler: answer(404, 'not found'), status: 404 },
    { name: 'a redirect', handler: answer(302, '', { Location: 'http://127.0.0.1:9/' }) },
  ];
  for (const tt of tests) {
    test(tt.name, async (t) => {
      const r = await serve(t, tt.handler);
      const sdk = new MeshGuard({ url: r.url, token: TOKEN, retries: 0 });
      await assert.rejects(sdk.check('read:papers'), (err) => {
        assert.ok(err instanceof Unavailable, `${err}`);
        assert.equal(err.kind, 'unavailable');
        if (tt.status !== undefined) assert.equal(err.status, tt.status);
        return true;
      });
    });
  }

  test('a timeout is Unavailable and not retried', async (t) => {
    const r = await serve(t, () => { /* never answers */ });
    const sdk = new MeshGuard({ url: r.url, token: TOKEN, timeoutMs: 200, retries: 3 });
    await assert.rejects(sdk.check('read:papers'), (err) => err instanceof Unavailable && /no answer in 200 ms/.test(err.message));
    assert.equal(r.requests.length, 1);
  });

  test('an unreachable MeshGuard is Unavailable after the retries', async () => {
    const sdk = new MeshGuard({ url: await closedPort(), token: TOKEN, retries: 1 });
    await assert.rejects(sdk.check('read:papers'), (err) => err instanceof Unavailable && /connection refused/.test(err.message));
  });
});

describe('retries only what is safe', () => {
  const tests = [
    { name: '503 is retried, then Unavailable', answers: [answer(503, { error: 'unavailable' })], retries: 2, requests: 3, error: Unavailable },
    { name: 'no retries', answers: [answer(503, { error: 'unavailable' })], retries: 0, requests: 1, error: Unavailable },
    { name: '503 then an allow', answers: [answer(503, { error: 'unavailable' }), answer(200, decision(true))], retries: 2, requests: 2 },
    { name: '429 honouring Retry-After, then an allow', answers: [answer(429, { error: 'rate_limited', reason: 'rate_limited' }, { 'Retry-After': '1' }), answer(200, decision(true))], retries: 1, requests: 2 },
    { name: '429 whose Retry-After is beyond the wait', answers: [answer(429, { error: 'rate_limited', reason: 'rate_limited', retry_after: 120 }, { 'Retry-After': '120' })], retries: 2, requests: 1, error: RateLimited, retryAfter: 120 },
    { name: '429 without Retry-After (a proxy\'s) is returned at once', answers: [answer(429, { error: 'rate_limited', reason: 'rate_limited' })], retries: 2, requests: 1, error: RateLimited },
    { name: '429 with Retry-After 0 is retried after the backoff', answers: [answer(429, { error: 'rate_limited' }, { 'Retry-After': '0' }), answer(200, decision(true))], retries: 2, requests: 2 },
    { name: '400 is not retried', answers: [answer(400, { error: 'bad_request', message: 'action' })], retries: 2, requests: 1, error: BadRequest },
    { name: '401 is not retried', answers: [answer(401, { error: 'unauthorized', reason: 'agent_revoked' })], retries: 2, requests: 1, error: Unauthorized },
    { name: '500 is not retried', answers: [answer(500, { error: 'internal' })], retries: 2, requests: 1, error: Unavailable },
  ];
  for (const tt of tests) {
    test(tt.name, async (t) => {
      const r = await serve(t, (req, res, n) => tt.answers[Math.min(n, tt.answers.length) - 1](req, res));
      const sdk = new MeshGuard({ url: r.url, token: TOKEN, retries: tt.retries, maxRetryWaitMs: 2000 });
      if (tt.error) {
        await assert.rejects(sdk.check('read:papers'), (err) => {
          assert.ok(err instanceof tt.error, `${err}`);
          if (tt.retryAfter !== undefined) assert.equal(err.retryAfter, tt.retryAfter);
          return true;
        });
      } else {
        assert.equal((await sdk.check('read:papers')).allowed, true);
      }
      assert.equal(r.requests.length, tt.requests);
    });
  }
});

describe('no token in sight', () => {
  test('errors, the SDK and a delegation print no token, even when the answer echoes it', async (t) => {
    const echo = `token ${TOKEN} and delegation ${DELEGATION} are no good`;
    const r = await serve(t, (req, res) => {
      if (req.url === '/v1/delegations') return answer(201, { token: DELEGATION, expiresAt: 'x', chain: ['a', 'b'], scope: ['read:*'], maxChain: 1 })(req, res);
      return answer(401, { error: 'unauthorized', reason: 'unauthorized', message: echo, trace_id: 'b'.repeat(32) })(req, res);
    });
    const sdk = new MeshGuard({ url: r.url, token: TOKEN });
    const d = await sdk.delegate('researcher', { actions: ['read:*'] });
    assert.equal(d.token, DELEGATION);
    const err = await sdk.actingFor(d).check('read:papers').then(() => assert.fail('allowed'), (e) => e);
    assert.ok(err instanceof Unauthorized);
    assert.equal(err.traceId, 'b'.repeat(32));
    const shown = [err.message, err.stack, String(err), JSON.stringify(err), inspect(err), JSON.stringify(sdk), inspect(sdk),
      JSON.stringify(sdk.actingFor(d)), inspect(sdk.actingFor(d)), JSON.stringify(d), inspect(d)];
    for (const s of shown) {
      assert.ok(!s.includes(TOKEN) && !s.includes(DELEGATION), `a token in ${s}`);
    }
    assert.match(err.message, /\[token\] and delegation \[delegation\]/);
  });

  const bad = [
    { name: 'no token', options: { url: 'http://127.0.0.1:3100' }, want: /token must be a non-empty string/ },
    { name: 'a token with a newline', options: { url: 'http://127.0.0.1:3100', token: `${TOKEN}\nX: y` }, want: /token holds whitespace/ },
    { name: 'a token with a character that is not ASCII', options: { url: 'http://127.0.0.1:3100', token: `${TOKEN}\u00e9` }, want: /token holds a character that is not visible ASCII/ },
    { name: 'a token beyond 16 KiB', options: { url: 'http://127.0.0.1:3100', token: 'x'.repeat(16 * 1024 + 1) }, want: /token is longer than 16 KiB/ },
    { name: 'a URL with credentials', options: { url: 'http://user:pw@127.0.0.1:3100', token: TOKEN }, want: /without credentials, query or fragment/ },
    { name: 'a URL with a query', options: { url: 'http://127.0.0.1:3100/?x=1', token: TOKEN }, want: /without credentials, query or fragment/ },
    { name: 'no URL', options: { url: 'meshguard', token: TOKEN }, want: /is not a URL/ },
    { name: 'not http', options: { url: 'file:///etc/passwd', token: TOKEN }, want: /must be http or https/ },
    { name: 'retries unbounded', options: { url: 'http://127.0.0.1:3100', token: TOKEN, retries: 1000 }, want: /retries must be a whole number from 0 to 10/ },
    { name: 'a bad traceparent', options: { url: 'http://127.0.0.1:3100', token: TOKEN, traceparent: '00-0-0-01' }, want: /traceparent is not/ },
  ];
  for (const tt of bad) {
    test(`refused: ${tt.name}`, () => {
      assert.throws(() => new MeshGuard(tt.options), (err) => {
        assert.ok(err instanceof TypeError);
        assert.match(err.message, tt.want);
        assert.ok(!err.message.includes(TOKEN), err.message);
        return true;
      });
    });
  }
});

test('a delegation is retried only when the connection was refused, never after an answer', async (t) => {
  for (const a of [answer(503, { error: 'unavailable' }), answer(429, { error: 'rate_limited' }, { 'Retry-After': '0' })]) {
    const r = await serve(t, a);
    const sdk = new MeshGuard({ url: r.url, token: TOKEN, retries: 2, maxRetryWaitMs: 2000 });
    await assert.rejects(sdk.delegate('researcher', { actions: ['read:*'] }), MeshGuardError);
    assert.equal(r.requests.length, 1);
  }
});

test('incoming traceparents (sdk/conformance/traceparents.json): W3C\'s rule', () => {
  const table = JSON.parse(readFileSync(path.join(repoRoot, 'sdk/conformance/traceparents.json'), 'utf8'));
  assert.ok(table.cases.length > 0);
  for (const c of table.cases) {
    const make = () => new MeshGuard({ url: 'http://127.0.0.1:3100', token: TOKEN, traceparent: c.value });
    if (c.traceId === undefined) {
      assert.throws(make, TypeError, JSON.stringify(c.value));
    } else {
      assert.equal(TRACEPARENT.exec(make().headers().traceparent)?.[1], c.traceId, JSON.stringify(c.value));
    }
  }
});

describe('carrying the headers', () => {
  test('fetch sets the headers and keeps the caller\'s', async (t) => {
    const r = await serve(t, answer(200, { ok: true }));
    const sdk = new MeshGuard({ url: r.url, token: TOKEN }).actingFor(DELEGATION);
    const tests = [
      (url) => sdk.fetch(url, { method: 'POST', headers: { 'X-Mine': 'kept', Authorization: `Bearer ${TOKEN}` }, body: 'x' }),
      (url) => sdk.fetch(new Request(url, { method: 'POST', headers: { 'X-Mine': 'kept' }, body: 'x' })),
    ];
    for (const send of tests) {
      const res = await send(`${r.url}/papers`);
      assert.equal(res.status, 200);
      await res.arrayBuffer();
    }
    for (const got of r.requests) {
      assert.equal(got.headers.authorization, `Bearer ${TOKEN}`);
      assert.equal(got.headers['x-meshguard-delegation'], DELEGATION);
      assert.match(got.headers.traceparent, TRACEPARENT);
      assert.equal(got.headers['x-mine'], 'kept');
      assert.equal(got.body, 'x');
    }
  });

  test("fetch refuses a caller's own credential and keeps a caller's traceparent", async (t) => {
    const r = await serve(t, answer(200, { ok: true }));
    const sdk = new MeshGuard({ url: r.url, token: TOKEN }).actingFor(DELEGATION);
    for (const headers of [{ Authorization: 'Bearer someone-else' }, { 'X-MeshGuard-Delegation': 'another.delegation.token' }]) {
      await assert.rejects(sdk.fetch(`${r.url}/papers`, { headers }), (err) => {
        assert.ok(err instanceof HeaderConflict, `${err}`);
        assert.ok(!err.message.includes(Object.values(headers)[0]), 'the message names no credential');
        return true;
      });
    }
    assert.equal(r.requests.length, 0, 'a refused request never leaves');
    const parent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    const res = await sdk.fetch(`${r.url}/papers`, { headers: { traceparent: parent } });
    await res.arrayBuffer();
    assert.equal(r.requests[0].headers.traceparent, parent);
    assert.equal(r.requests[0].headers.authorization, `Bearer ${TOKEN}`);
  });

  test('fetch follows no redirect: the tokens stay with the host they were meant for', async (t) => {
    const elsewhere = await serve(t, answer(200, { ok: true }));
    const mesh = await serve(t, answer(307, '', { Location: `${elsewhere.url}/collect` }));
    const sdk = new MeshGuard({ url: mesh.url, token: TOKEN }).actingFor(DELEGATION);
    const tests = [
      { name: 'no redirect option', send: (url) => sdk.fetch(url) },
      { name: "redirect: 'follow' asked for", send: (url) => sdk.fetch(url, { redirect: 'follow' }) },
      { name: 'a Request (its redirect is follow)', send: (url) => sdk.fetch(new Request(url)) },
      { name: "the MCP transport's fetch", send: (url) => sdk.mcpTransportOptions().fetch(url, { method: 'GET' }) },
    ];
    for (const tt of tests) {
      const res = await tt.send(`${mesh.url}/papers`);
      assert.equal(res.status, 307, `${tt.name}: the redirect is the caller's to follow`);
      await res.arrayBuffer();
    }
    assert.equal(mesh.requests.length, tests.length);
    assert.equal(elsewhere.requests.length, 0, `followed: ${JSON.stringify(elsewhere.requests.map((q) => Object.keys(q.headers)))}`);
  });

  test('fetch gives the tokens to the mesh only: MeshGuard\'s host and meshHosts', async (t) => {
    const meshguard = await serve(t, answer(200, { ok: true }));
    const service = await serve(t, answer(200, { ok: true }));
    const elsewhere = await serve(t, answer(200, { ok: true }));
    const sdk = new MeshGuard({ url: meshguard.url, token: TOKEN, meshHosts: [service.url.replace('http://', '')] }).actingFor(DELEGATION);
    const opts = sdk.mcpTransportOptions();
    const tests = [
      { name: "MeshGuard's gateway", r: meshguard, send: () => sdk.fetch(`${meshguard.url}/proxy/papers`), tokens: true },
      { name: 'a mesh host', r: service, send: () => sdk.fetch(new URL(`${service.url}/papers`)), tokens: true },
      { name: 'another host', r: elsewhere, send: () => sdk.fetch(`${elsewhere.url}/collect`), tokens: false },
      { name: 'another host, a Request', r: elsewhere, send: () => sdk.fetch(new Request(`${elsewhere.url}/collect`)), tokens: false },
      { name: "another host through the MCP options' requestInit", r: elsewhere, send: () => opts.fetch(`${elsewhere.url}/mcp`, { ...opts.requestInit }), tokens: false },
    ];
    for (const tt of tests) {
      const before = tt.r.requests.length;
      const res = await tt.send();
      await res.arrayBuffer();
      const got = tt.r.requests[before].headers;
      if (tt.tokens) {
        assert.equal(got.authorization, `Bearer ${TOKEN}`, tt.name);
        assert.equal(got['x-meshguard-delegation'], DELEGATION, tt.name);
      } else {
        assert.ok(got.authorization === undefined && got['x-meshguard-delegation'] === undefined,
          `${tt.name}: the agent's credentials went to another host (authorization ${got.authorization !== undefined}, delegation ${got['x-meshguard-delegation'] !== undefined})`);
      }
    }
    assert.throws(() => new MeshGuard({ url: meshguard.url, token: TOKEN, meshHosts: ['ftp://x'] }), /meshHosts/);
  });

  test("the MCP transport's options carry the headers", async (t) => {
    const r = await serve(t, answer(200, { jsonrpc: '2.0', id: 1, result: {} }));
    const sdk = new MeshGuard({ url: r.url, token: TOKEN });
    const opts = sdk.mcpTransportOptions();
    assert.equal(opts.requestInit.headers.Authorization, `Bearer ${TOKEN}`);
    // What the transport does with them: its requestInit merged with its own headers, through fetch.
    const res = await opts.fetch(new URL(`${r.url}/mcp`), {
      ...opts.requestInit, method: 'POST',
      headers: { ...opts.requestInit.headers, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: '{"jsonrpc":"2.0","id":1,"method":"tools/list"}',
    });
    assert.equal(res.status, 200);
    await res.arrayBuffer();
    const got = r.requests[0].headers;
    assert.equal(got.authorization, `Bearer ${TOKEN}`);
    assert.match(got.traceparent, TRACEPARENT);
    assert.equal(got['content-type'], 'application/json');
  });
});

describe('governed', () => {
  test('runs the function only when allowed, asking about what its arguments say', async (t) => {
    const r = await serve(t, (req, res, n) => answer(n === 1 ? 200 : 403, decision(n === 1))(req, res));
    const sdk = new MeshGuard({ url: r.url, token: TOKEN });
    const sent = [];
    const send = sdk.governed('write:email', async (to, body) => { sent.push([to, body]); return 'sent'; },
      { resource: (to) => `mailto:${to}`, context: (to) => ({ recipient: to }) });
    assert.equal(await send('ann@example.com', 'hi'), 'sent');
    await assert.rejects(send('eve@elsewhere.test', 'hi'), (err) => err instanceof Denied && err.reason === 'rule_deny' && err.decision?.allowed === false);
    assert.deepEqual(sent, [['ann@example.com', 'hi']]);
    assert.deepEqual(r.requests.map((q) => JSON.parse(q.body)), [
      { action: 'write:email', resource: 'mailto:ann@example.com', context: { recipient: 'ann@example.com' } },
      { action: 'write:email', resource: 'mailto:eve@elsewhere.test', context: { recipient: 'eve@elsewhere.test' } },
    ]);
  });
});
