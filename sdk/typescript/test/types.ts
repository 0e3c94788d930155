// Compiled by `tsc` (never run): the declarations in src/index.d.ts support
// the SDK's documented uses, and refuse misuses (@ts-expect-error).
import { ApprovalRequired, Denied, MeshGuard, MeshGuardError, denialFrom, type Approval, type Decision, type Delegation } from '@meshguard/sdk';

export async function uses(): Promise<void> {
  const mg = new MeshGuard({ url: 'http://127.0.0.1:3100', token: 't', timeoutMs: 2000, retries: 1 });
  const d: Decision = await mg.check('read:papers', { resource: '/papers/42', context: { purpose: 'survey' } });
  const allowed: boolean = d.allowed;
  await mg.require('read:papers');
  const del: Delegation = await mg.delegate('researcher', { actions: ['read:*'], maxDepth: 1, ttl: '30m' });
  const forChain: MeshGuard = mg.actingFor(del).actingFor(del.token);
  const h: Record<string, string> = forChain.headers();
  const send = mg.governed('write:email', async (to: string, body: string) => to.length + body.length, {
    context: (to) => ({ recipient: to }),
  });
  const n: number = await send('ann@example.com', 'hi');
  const res: Response = await mg.fetch('http://127.0.0.1:8080/x', { method: 'POST' });
  const opts = mg.mcpTransportOptions();
  await opts.fetch(new URL('http://127.0.0.1:8080/mcp'), opts.requestInit);
  try {
    await mg.require('read:x');
  } catch (e) {
    if (e instanceof Denied) {
      const r: string | undefined = e.reason;
      const k: 'denied' = e.kind;
      void r; void k;
    } else if (e instanceof MeshGuardError) {
      const s: number | undefined = e.retryAfter;
      void s;
    }
  }
  try {
    await mg.require('write:email', { context: { recipient: 'x@y' }, waitSeconds: 30 });
  } catch (e) {
    if (e instanceof ApprovalRequired) {
      const ap: Approval = await mg.waitForApproval(e.approvalId, { timeoutMs: 60_000 });
      void ap.status;
      await mg.require('write:email', { context: { recipient: 'x@y' } });
    }
  }
  await mg.require('write:email', { waitForApprovalMs: 60_000 });
  const held: Decision = await mg.check('write:email', { waitSeconds: 30 });
  if (held.approvalId !== undefined) await mg.waitForApproval(held.approvalId);
  const refusal: MeshGuardError | null = await denialFrom(res);
  void refusal;
  // @ts-expect-error: waitForApproval takes an id
  await mg.waitForApproval();
  // @ts-expect-error: the token is required
  new MeshGuard({ url: 'http://127.0.0.1:3100' });
  // @ts-expect-error: delegate needs the actions
  await mg.delegate('researcher', {});
  // @ts-expect-error: context is an object
  await mg.check('read:x', { context: 'no' });
  void allowed; void h; void n; void res;
}
