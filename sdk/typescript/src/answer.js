// Reading MeshGuard's answers strictly, as every SDK does (sdk/conformance):
// a body that could be read two ways (a key twice, also alike but for case
// as Go's decoder folds it) or a decision contradicting itself or its
// status is no answer, so a proxy or a hostile server in between cannot
// turn a denial into an allow.

/**
 * JSON.parse that refuses an object naming a key twice; undefined for
 * anything that is not one JSON document.
 * @param {string} text
 */
export function parseStrict(text) {
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    return undefined;
  }
  return hasDuplicateKey(text) ? undefined : json;
}

// hasDuplicateKey scans text, which JSON.parse has accepted: in an object a
// string is a key after '{' or ','.
function hasDuplicateKey(text) {
  const stack = []; // {keys: Set|null, expectKey: boolean}
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    const top = stack[stack.length - 1];
    if (c === '"') {
      let j = i + 1;
      while (text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      if (top?.keys && top.expectKey) {
        const k = JSON.parse(text.slice(i, j + 1)).toLowerCase().toUpperCase();
        if (top.keys.has(k)) return true;
        top.keys.add(k);
        top.expectKey = false;
      }
      i = j;
    } else if (c === '{') {
      stack.push({ keys: new Set(), expectKey: true });
    } else if (c === '[') {
      stack.push({ keys: null, expectKey: false });
    } else if (c === '}' || c === ']') {
      stack.pop();
    } else if (c === ',' && top?.keys) {
      top.expectKey = true;
    }
  }
  return false;
}

/**
 * The decision of a /v1/check answer, or undefined when the body is no
 * decision or contradicts itself or its status. An allow is a 200 that
 * says allowed and allow (no other status in its body), or audit mode's
 * deny let through; a denial says not allowed and deny.
 */
export function decisionOf(json, status) {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) return undefined;
  const { allowed, decision, reason } = json;
  if (typeof allowed !== 'boolean' || typeof reason !== 'string' || (decision !== 'allow' && decision !== 'deny')) return undefined;
  if (json.status !== undefined && !Number.isInteger(json.status)) return undefined;
  if (allowed) {
    if (status !== 200) return undefined;
    if (decision === 'allow' && json.status !== undefined && json.status !== 200) return undefined;
    if (decision === 'deny' && json.mode !== 'audit') return undefined;
  } else if (decision !== 'deny') {
    return undefined;
  }
  return json;
}
