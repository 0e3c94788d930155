// mcpTransportOptions with the official MCP TypeScript SDK on both ends: a
// real Client over StreamableHTTPClientTransport calls a real McpServer
// (StreamableHTTPServerTransport on node:http, loopback) through a real
// `meshguard serve` gateway whose config declares the route as MCP
// (docs/mcp.md). What the tool saw and what the audit trail recorded are
// asserted, not just what the client got back.

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport, StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { context, trace, TraceFlags } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { z } from 'zod';

import { MeshGuard } from '@meshguard/sdk';
import { admin, receiver, startMeshGuard } from './server.js';

const SERVICE = 'notes';

// The caller may search and mail example.com; delete_note is denied by a
// rule; the lead may search and hand that on.
const POLICIES = `
name: notes-lead
appliesTo: {tags: [notes-lead]}
delegation: {maxDepth: 2}
rules:
  - {name: lead, effect: allow, actions: ["connect:${SERVICE}", "call:${SERVICE}/search"]}
---
name: notes-agents
appliesTo: {tags: [notes-user]}
rules:
  - {name: no-deletes, effect: deny, actions: ["call:${SERVICE}/delete_note"], reason: notes are deleted by people}
  - name: outside-mail
    effect: deny
    actions: ["call:${SERVICE}/send_email"]
    conditions: {context: {arguments.to: {not_matches: "*@example.com"}}}
    reason: mail goes to example.com only
  - name: notes
    effect: allow
    actions: ["connect:${SERVICE}", "list:${SERVICE}/tools", "call:${SERVICE}/search", "call:${SERVICE}/send_email"]
`;

/**
 * An MCP server of the official SDK on 127.0.0.1:0, one McpServer and
 * transport per session; `calls` holds each tool call's name, arguments and
 * the HTTP headers it arrived with.
 */
async function startMcpServer() {
  const calls = [];
  const sessions = new Map();
  const newServer = () => {
    const s = new McpServer({ name: 'notes', version: '1.0.0' });
    const tool = (name, inputSchema, run) => s.registerTool(name, { description: name, inputSchema }, async (args, extra) => {
      calls.push({ name, args, headers: extra.requestInfo?.headers ?? {} });
      return { content: [{ type: 'text', text: run(args) }] };
    });
    tool('search', { query: z.string() }, (a) => `found: ${a.query}`);
    tool('delete_note', { id: z.string() }, (a) => `deleted ${a.id}`);
    tool('send_email', { to: z.string(), body: z.string() }, (a) => `sent to ${a.to}`);
    return s;
  };
  const server = http.createServer(async (req, res) => {
    try {
      const id = req.headers['mcp-session-id'];
      let transport = typeof id === 'string' ? sessions.get(id) : undefined;
      if (transport === undefined) {
        if (id !== undefined) {
          res.writeHead(404).end();
          return;
        }
        transport = new StreamableHTTPServerTransport({
          sessionIdGenerator: randomUUID,
          onsessioninitialized: (sid) => sessions.set(sid, transport),
        });
        await newServer().connect(transport);
      }
      await transport.handleRequest(req, res);
    } catch (err) {
      if (!res.headersSent) res.writeHead(500);
      res.end(String(err));
    }
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    calls,
    close: async () => {
      for (const t of sessions.values()) await t.close();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

describe('the MCP TypeScript SDK through MeshGuard with mcpTransportOptions', () => {
  let mcp;
  let mg;
  let dir;
  const agents = {};
  const clients = [];

  before(async () => {
    mcp = await startMcpServer();
    dir = await mkdtemp(path.join(tmpdir(), 'meshguard-sdk-ts-mcp-'));
    // The config file stays out of POLICIES_DIR, where it would be read as a policy.
    await mkdir(path.join(dir, 'policies'));
    await writeFile(path.join(dir, 'policies', 'mcp.yaml'), POLICIES);
    await writeFile(path.join(dir, 'meshguard.yaml'), `routes:\n  - {path: /mcp, protocol: mcp, service: ${SERVICE}}\n`);
    // AUDIT_FLUSH_MS=0: each decision is stored before it is answered, so the
    // audit queries below see it without waiting. ANSWER_EXTRAS: the tool
    // below asserts the agent's name and the chain, which the default answer
    // leaves out (docs/enforcement.md, "What an answer carries").
    mg = await startMeshGuard(path.join(dir, 'policies'), {
      args: ['--config', path.join(dir, 'meshguard.yaml')],
      env: { PROXY_TARGET: mcp.url, AUDIT_FLUSH_MS: '0', ANSWER_EXTRAS: 'agent-name,chain' },
    });
    for (const [name, tags] of [['caller', ['notes-user']], ['lead', ['notes-lead']]]) {
      agents[name] = await admin(mg, 'POST', '/admin/agents', { name, trustTier: 'verified', tags }, 201);
    }
  });

  after(async () => {
    for (const c of clients) await c.close();
    await mcp?.close();
    await mg?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  async function connect(sdk) {
    const client = new Client({ name: 'meshguard-sdk-test', version: '1.0.0' });
    const transport = new StreamableHTTPClientTransport(new URL(`${mg.url}/proxy/mcp`), sdk.mcpTransportOptions());
    await client.connect(transport);
    clients.push(client);
    return client;
  }

  async function audit(query) {
    const q = new URLSearchParams({ limit: '100', ...query });
    return (await admin(mg, 'GET', `/admin/audit?${q}`, undefined, 200)).records;
  }

  let client;
  let caller;

  test('connect: initialize goes through MeshGuard, allowed as connect:S', async () => {
    caller = new MeshGuard({ url: mg.url, token: agents.caller.token });
    client = await connect(caller);
    const records = await audit({ agent: 'caller', action: `connect:${SERVICE}` });
    assert.ok(records.some((r) => r.decision === 'allow' && r.call?.method === 'initialize'),
      `no allowed initialize in ${JSON.stringify(records.map((r) => [r.action, r.decision, r.call?.method]))}`);
  });

  test('listTools holds only the tools the agent may call', async () => {
    const { tools } = await client.listTools();
    assert.deepEqual(tools.map((t) => t.name).sort(), ['search', 'send_email']);
  });

  test("an allowed call reaches the tool with MeshGuard's identity headers, not the agent's token", async () => {
    const before = mcp.calls.length;
    const res = await client.callTool({ name: 'search', arguments: { query: 'mesh' } });
    assert.deepEqual(res.content, [{ type: 'text', text: 'found: mesh' }]);
    assert.equal(mcp.calls.length, before + 1);
    const { headers } = mcp.calls.at(-1);
    assert.equal(headers['x-meshguard-agent-id'], agents.caller.id);
    assert.equal(headers['x-meshguard-agent-name'], 'caller');
    assert.equal(headers.authorization, undefined);
    assert.ok(!JSON.stringify(headers).includes(agents.caller.token), 'the agent token reached the MCP server');
    const [r] = await audit({ agent: 'caller', action: `call:${SERVICE}/search` });
    assert.equal(r.decision, 'allow');
    assert.equal(r.agentId, agents.caller.id);
    assert.equal(r.call?.name, 'search');
  });

  const denials = [
    { name: 'a denied tool', tool: 'delete_note', arguments: { id: 'n1' }, rule: 'no-deletes', message: 'notes are deleted by people' },
    { name: 'a tool refused on its arguments', tool: 'send_email', arguments: { to: 'eve@elsewhere.test', body: 'hi' }, rule: 'outside-mail', message: 'mail goes to example.com only' },
  ];
  for (const d of denials) {
    test(`${d.name} is the MCP SDK's McpError -32043 with MeshGuard's reason; the session goes on`, async () => {
      const before = mcp.calls.length;
      const err = await client.callTool({ name: d.tool, arguments: d.arguments }).then(
        () => assert.fail(`${d.tool} was served`), (e) => e);
      assert.ok(err instanceof McpError, `not an McpError: ${err?.constructor?.name}: ${err?.message}`);
      assert.equal(err.code, -32043);
      assert.equal(err.data?.reason, 'rule_deny');
      assert.equal(err.data?.rule, d.rule);
      assert.equal(err.data?.action, `call:${SERVICE}/${d.tool}`);
      assert.match(err.message, new RegExp(d.message));
      const [r] = await audit({ agent: 'caller', action: `call:${SERVICE}/${d.tool}` });
      assert.equal(r.decision, 'deny');
      assert.equal(r.agentId, agents.caller.id);
      assert.equal(err.data?.decision_id, r.decisionId);
      assert.equal(r.rule, d.rule);
      // The session survives: an allowed call after the denial is served,
      // and it is the only call that reached the server.
      const res = await client.callTool({ name: 'search', arguments: { query: 'after' } });
      assert.deepEqual(res.content, [{ type: 'text', text: 'found: after' }]);
      assert.deepEqual(mcp.calls.slice(before).map((c) => c.name), ['search']);
    });
  }

  test('a call carries the active OpenTelemetry trace, and the audit trail finds it there', async (t) => {
    const cm = new AsyncLocalStorageContextManager().enable();
    context.setGlobalContextManager(cm);
    t.after(() => context.disable());
    const traceId = '5b8efff798038103d269b633813fc60c';
    const sc = { traceId, spanId: 'eee19b7ec3c1b174', traceFlags: TraceFlags.SAMPLED };
    await context.with(trace.setSpanContext(context.active(), sc), async () => {
      await client.callTool({ name: 'search', arguments: { query: 'traced' } });
    });
    assert.match(mcp.calls.at(-1).headers.traceparent ?? '', new RegExp(`^00-${traceId}-`));
    const records = await audit({ traceId });
    assert.deepEqual(records.map((r) => [r.action, r.decision, r.agentId]), [[`call:${SERVICE}/search`, 'allow', agents.caller.id]]);
  });

  test('acting for a delegation sends it, and the chain is recorded', async () => {
    const lead = new MeshGuard({ url: mg.url, token: agents.lead.token });
    const delegation = await lead.delegate('caller', { actions: [`connect:${SERVICE}`, `call:${SERVICE}/search`] });
    const acting = caller.actingFor(delegation);
    const delegated = await connect(acting);
    const res = await delegated.callTool({ name: 'search', arguments: { query: 'for the lead' } });
    assert.deepEqual(res.content, [{ type: 'text', text: 'found: for the lead' }]);
    const { headers } = mcp.calls.at(-1);
    assert.equal(headers['x-meshguard-chain'], `${agents.lead.id},${agents.caller.id}`);
    assert.ok(!JSON.stringify(headers).includes(delegation.token), 'the delegation token reached the MCP server');
    const [r] = await audit({ agent: 'caller', action: `call:${SERVICE}/search` });
    assert.equal(r.decision, 'allow');
    assert.deepEqual(r.chain, [agents.lead.id, agents.caller.id]);
    // send_email: the caller's own policy allows it, but the lead may not
    // (and the delegation's scope does not hold it), so acting for the lead
    // it is denied.
    const err = await delegated.callTool({ name: 'send_email', arguments: { to: 'team@example.com', body: 'hi' } }).then(
      () => assert.fail('send_email was served outside the delegation'), (e) => e);
    assert.ok(err instanceof McpError, `not an McpError: ${err?.message}`);
    assert.equal(err.code, -32043);
    assert.equal(err.data?.reason, 'delegation_member_denied');
  });
});

// Only MeshGuard's denial of a request the SDK can match (a JSON-RPC error
// with the request's id, X-MeshGuard-Decision: deny) becomes an McpError;
// any other 4xx stays the SDK's HTTP error — an error either way, never a result.
describe('mcpTransportOptions reads a 4xx as a JSON-RPC error only when it is MeshGuard denying that request', () => {
  const cases = [
    { name: "MeshGuard's denial", decision: 'deny', id: 'request', want: McpError },
    { name: 'a denial with id null (matches no request)', decision: 'deny', id: null, want: StreamableHTTPError },
    { name: "the upstream's own 403 (no X-MeshGuard-Decision)", decision: undefined, id: 'request', want: StreamableHTTPError },
    { name: 'a denial whose body is no JSON-RPC error', decision: 'deny', body: { error: 'forbidden', reason: 'rule_deny' }, want: StreamableHTTPError },
  ];
  for (const c of cases) {
    test(c.name, async (t) => {
      const r = await receiver((req, res, n) => {
        const { id } = JSON.parse(r.requests[n - 1].body || '{}');
        const body = c.body ?? { jsonrpc: '2.0', id: c.id === 'request' ? id : c.id, error: { code: -32043, message: 'no', data: { reason: 'rule_deny' } } };
        res.writeHead(403, { 'Content-Type': 'application/json', ...(c.decision ? { 'X-MeshGuard-Decision': c.decision } : {}) });
        res.end(JSON.stringify(body));
      });
      t.after(r.close);
      const sdk = new MeshGuard({ url: r.url, token: 'mcp-test-token' });
      const client = new Client({ name: 'meshguard-sdk-test', version: '1.0.0' });
      const err = await client.connect(new StreamableHTTPClientTransport(new URL(`${r.url}/proxy/mcp`), sdk.mcpTransportOptions())).then(
        () => assert.fail('connected'), (e) => e);
      t.after(() => client.close());
      assert.ok(err instanceof c.want, `want ${c.want.name}, got ${err?.constructor?.name}: ${err?.message}`);
      if (c.want === McpError) assert.equal(err.code, -32043);
      else assert.equal(err.code, 403);
    });
  }
});
