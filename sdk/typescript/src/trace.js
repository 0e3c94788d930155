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

const traceparentRe = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

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
 * Parses a traceparent header value; undefined when it is not a valid one
 * (version 00, non-zero ids).
 * @param {string} value
 */
export function parseTraceparent(value) {
  const m = traceparentRe.exec(String(value).trim());
  if (!m || /^0+$/.test(m[1]) || /^0+$/.test(m[2])) return undefined;
  return { traceId: m[1], spanId: m[2], flags: m[3] };
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
