// W3C trace context: the active OpenTelemetry span's when @opentelemetry/api
// can be imported and a span is active, else a trace this SDK made.

import { randomBytes } from 'node:crypto';

const otel = await loadOtel();

async function loadOtel() {
  try {
    return await import('@opentelemetry/api');
  } catch {
    // Not installed: the SDK makes its own trace ids.
    return undefined;
  }
}

const traceparentRe = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-[\s\S]*)?$/;

/** @returns {string} 32 lower-case hex digits, not all zero. */
export function newTraceId() {
  return nonZeroHex(16);
}

function nonZeroHex(n) {
  for (;;) {
    const h = randomBytes(n).toString('hex');
    if (!/^0+$/.test(h)) return h;
  }
}

/**
 * Parses an incoming traceparent header value; undefined when it is not a
 * valid one. W3C's rule, the same in every SDK: lower-case hex only; version
 * 00 is exactly 55 characters; a higher version is read by its first 55 (what
 * follows starts with '-'); version ff and all-zero ids are invalid.
 * @param {string} value
 */
export function parseTraceparent(value) {
  const m = traceparentRe.exec(String(value).trim());
  if (!m || m[1] === 'ff' || (m[1] === '00' && m[5] !== undefined) || /^0+$/.test(m[2]) || /^0+$/.test(m[3])) return undefined;
  return { traceId: m[2], spanId: m[3], flags: m[4] };
}

/**
 * The traceparent for an outgoing request: the active span's when there is
 * one, else a new span of `traceId` (sampled).
 * @param {string} traceId
 */
export function traceparent(traceId) {
  if (otel) {
    const sc = otel.trace.getSpanContext(otel.context.active());
    if (sc && otel.isSpanContextValid(sc)) {
      return `00-${sc.traceId}-${sc.spanId}-${(sc.traceFlags & 0xff).toString(16).padStart(2, '0')}`;
    }
  }
  return `00-${traceId}-${nonZeroHex(8)}-01`;
}
