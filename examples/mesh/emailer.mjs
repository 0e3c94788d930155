// The TypeScript agent of the example mesh (examples/mesh): it sends mail and
// files drafts for whoever handed it the task through MeshGuard's gateway,
// acting for that chain (the delegation the gateway minted for it) — each
// time only after MeshGuard allowed it (@meshguard/sdk, imported from the
// repository: plain ES modules, no build step).
//
// It listens on 127.0.0.1 (LISTEN, default an ephemeral port) and prints
// "listening on http://ADDR" first; MESHGUARD_URL and MESHGUARD_TOKEN
// configure it. Node.js >= 18, no dependencies.
import http from 'node:http';
import { MeshGuard, MeshGuardError } from '../../sdk/typescript/src/index.js';

const url = process.env.MESHGUARD_URL;
const token = process.env.MESHGUARD_TOKEN;
const [host, port] = (process.env.LISTEN || '127.0.0.1:0').split(':');
// A missing or malformed URL or token stops the agent here, not at its first task.
new MeshGuard({ url, token });

// What each endpoint does, and the action MeshGuard is asked about first.
const work = {
  '/send': { action: 'write:email', context: (m) => ({ recipient: m.to }), done: (m) => `sent "${m.subject}" to ${m.to}` },
  '/drafts': { action: 'write:notes/drafts/report', context: () => ({}), done: (m) => `filed a draft of "${m.subject}"` },
};

function reply(res, status, steps) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ steps }));
}

async function readJSON(req) {
  let size = 0;
  const chunks = [];
  for await (const c of req) {
    size += c.length;
    if (size > 64 * 1024) throw new Error('body over 64 KiB');
    chunks.push(c);
  }
  return JSON.parse(Buffer.concat(chunks).toString('utf8'));
}

async function handle(req, res) {
  const job = req.method === 'POST' ? work[req.url] : undefined;
  if (!job) return reply(res, 404, []);
  let msg;
  try {
    msg = await readJSON(req);
  } catch {
    return reply(res, 400, []);
  }
  const delegation = req.headers['x-meshguard-delegation'];
  if (typeof delegation !== 'string' || delegation === '') {
    return reply(res, 401, [{ agent: 'emailer', action: job.action, outcome: 'refused', reason: 'no delegation token' }]);
  }
  let mg;
  try {
    // Continue the caller's trace and act for the chain that handed the task on.
    const tp = req.headers.traceparent;
    mg = new MeshGuard({ url, token, ...(typeof tp === 'string' ? { traceparent: tp } : {}) }).actingFor(delegation);
  } catch (e) {
    return reply(res, 400, [{ agent: 'emailer', action: job.action, outcome: 'refused', reason: String(e.message) }]);
  }
  try {
    await mg.require(job.action, { context: job.context(msg) });
  } catch (e) {
    // Denied, revoked, unreachable: none of them is an allow.
    const denied = e instanceof MeshGuardError && e.kind === 'denied';
    const reason = e instanceof MeshGuardError ? (e.reason || e.kind) : 'error';
    console.log(`${job.action} ${denied ? 'denied' : 'refused'} ${reason}`);
    return reply(res, e instanceof MeshGuardError && e.status ? e.status : 502,
      [{ agent: 'emailer', action: job.action, outcome: denied ? 'denied' : 'refused', reason }]);
  }
  console.log(`${job.action} allowed: ${job.done(msg)}`);
  return reply(res, 200, [{ agent: 'emailer', action: job.action, outcome: 'allowed' }]);
}

const server = http.createServer((req, res) => {
  handle(req, res).catch(() => reply(res, 500, []));
});
server.listen(Number(port), host, () => {
  const a = server.address();
  console.log(`listening on http://${a.address}:${a.port}`);
});
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => server.close(() => process.exit(0)));
