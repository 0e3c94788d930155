// A server that answers "pending" without holding the poll (a proxy, one
// shutting down) gets no poll storm from waitForApproval.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { ApprovalTimeout, MeshGuard } from '@meshguard/sdk';
import { receiver } from './server.js';

const TOKEN = 'eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJhZ2VudF90ZXN0In0.c2lnbmF0dXJlLXNlY3JldA';

test('waitForApproval polls a server that does not hold at most once a second', async (t) => {
  const r = await receiver((req, res) => {
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ id: 'apr_s', status: 'pending', action: 'a:b', agentId: 'ag', createdAt: '2026-01-01T00:00:00Z',
      expiresAt: '2026-01-01T00:00:00Z', traceId: '4bf92f3577b34da6a3ce929d0e0e4736' }));
  });
  t.after(r.close);
  const mg = new MeshGuard({ url: r.url, token: TOKEN, timeoutMs: 1000 });
  const waitS = 3;
  await assert.rejects(mg.waitForApproval('apr_s', { timeoutMs: waitS * 1000 }), ApprovalTimeout);
  // One poll a second at most, plus the first: unpaced, it is hundreds.
  assert.ok(r.requests.length <= waitS + 1, `${r.requests.length} polls in a ${waitS} s wait`);
});
