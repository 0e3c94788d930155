// Test helpers: a real `meshguard serve` as a child process, and real
// loopback HTTP receivers standing in for a broken MeshGuard.

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

/**
 * Starts `meshguard serve` (MESHGUARD_BIN, else bin/meshguard) on free
 * loopback ports with a fresh data directory, and waits until it is ready.
 * `args` go after `serve` (a --config), `env` is added to its environment.
 * @returns {Promise<{url: string, adminToken: string, stop: () => Promise<void>}>}
 */
export async function startMeshGuard(policiesDir, { args = [], env = {} } = {}) {
  const bin = process.env.MESHGUARD_BIN || path.join(repoRoot, 'bin/meshguard');
  const dataDir = await mkdtemp(path.join(tmpdir(), 'meshguard-sdk-ts-'));
  const adminToken = randomBytes(24).toString('hex');
  const child = spawn(bin, ['serve', ...args], {
    env: {
      PATH: process.env.PATH, HOME: process.env.HOME, HOST: '127.0.0.1', PORT: '0', GRPC_PORT: '0',
      DATA_DIR: dataDir, ADMIN_TOKEN: adminToken, POLICIES_DIR: policiesDir, LOG_FORMAT: 'json', ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  let log = '';
  const serving = new Promise((resolve, reject) => {
    child.once('error', reject);
    exited.then(({ code, signal }) => reject(new Error(`meshguard serve exited (${code ?? signal}) before serving:\n${log}`)));
    let pending = '';
    const onData = (chunk) => {
      log += chunk;
      pending += chunk;
      let nl;
      while ((nl = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        try {
          const rec = JSON.parse(line);
          if (rec.msg === 'meshguard serving') resolve(rec.http);
        } catch {
          // not a JSON log line
        }
      }
    };
    child.stdout.setEncoding('utf8').on('data', onData);
    child.stderr.setEncoding('utf8').on('data', onData);
  });
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
    await rm(dataDir, { recursive: true, force: true });
  };
  let url;
  try {
    url = `http://${await serving}`;
    await waitReady(url);
  } catch (err) {
    await stop();
    throw err;
  }
  return { url, adminToken, stop };
}

// waitReady polls /ready, a condition that becomes true, with a generous deadline.
async function waitReady(url) {
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      const res = await fetch(`${url}/ready`);
      await res.arrayBuffer();
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`${url}/ready did not answer 200 in 30 s`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Calls the admin API; rejects unless it answers `want`. */
export async function admin(mg, method, p, body, want) {
  const res = await fetch(mg.url + p, {
    method,
    headers: { 'X-Admin-Token': mg.adminToken, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (res.status !== want) throw new Error(`${method} ${p}: ${res.status} ${text}`);
  return JSON.parse(text);
}

/**
 * A loopback HTTP server answering every request with handler(req, res);
 * `requests` holds what it received (method, url, headers, body).
 * @returns {Promise<{url: string, requests: Array<{method: string, url: string, headers: http.IncomingHttpHeaders, body: string}>, close: () => Promise<void>}>}
 */
export async function receiver(handler) {
  const requests = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8').on('data', (c) => { body += c; }).on('end', () => {
      requests.push({ method: req.method, url: req.url, headers: req.headers, body });
      handler(req, res, requests.length);
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}

/** A loopback URL whose port nothing listens on: one taken from the kernel, then closed. */
export async function closedPort() {
  const s = net.createServer();
  await new Promise((resolve) => s.listen(0, '127.0.0.1', resolve));
  const { port } = s.address();
  await new Promise((resolve) => s.close(resolve));
  return `http://127.0.0.1:${port}`;
}

/** A handler answering JSON with a status (and extra headers). */
export function answer(status, body, headers = {}) {
  return (req, res) => {
    res.writeHead(status, { 'Content-Type': 'application/json', ...headers });
    res.end(typeof body === 'string' ? body : JSON.stringify(body));
  };
}
