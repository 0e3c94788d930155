// parseStrict: one reading of a body, or none.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { parseStrict } from '../src/answer.js';

test('parseStrict', () => {
  const tests = [
    { name: 'a plain object', text: '{"a":1,"b":[{"a":2}]}', ok: true },
    { name: 'the same key in nested objects', text: '{"a":{"x":1},"x":{"a":2}}', ok: true },
    { name: 'a key in a value', text: '{"a":"a","b":["a","a"]}', ok: true },
    { name: 'escaped quotes and backslashes', text: '{"a\\\\":"\\"b\\"","b":"x"}', ok: true },
    { name: 'a key twice', text: '{"allowed":false,"allowed":true}', ok: false },
    { name: 'a key twice in another case', text: '{"allowed":false,"Allowed":true}', ok: false },
    { name: 'a key twice, one escaped', text: '{"allowed":false,"\\u0061llowed":true}', ok: false },
    { name: 'a key twice in a nested object', text: '{"a":[{"k":1,"k":2}]}', ok: false },
    { name: 'two documents', text: '{} {}', ok: false },
  ];
  for (const tt of tests) {
    assert.equal(parseStrict(tt.text) !== undefined, tt.ok, tt.name);
  }
});
