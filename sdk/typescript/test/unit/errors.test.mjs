// Error classes: the wire-code mapping, their fields, and instanceof across
// the ESM and the CJS build loaded in one process.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import * as esm from '../../dist/index.js';

const require = createRequire(import.meta.url);
const cjs = require('../../dist/index.cjs');

const CLASSES = ['SandboxSDKError', 'ConnectionError', 'TimeoutError', 'SandboxError', 'RateLimitError', 'AuthenticationError', 'ValidationError'];

test('both builds export the same API', () => {
  for (const mod of [esm, cjs]) {
    assert.equal(typeof mod.default, 'function', 'default export');
    assert.equal(mod.default, mod.SandboxSDK, 'named SandboxSDK is the default export');
    for (const name of CLASSES) assert.equal(typeof mod[name], 'function', name);
  }
  assert.notEqual(esm.SandboxError, cjs.SandboxError, 'the builds are separate copies (so the test below means something)');
});

const table = [
  // code, class, extra checks
  ['rate_limited', 'RateLimitError'],
  ['timeout', 'TimeoutError'],
  ['unauthenticated', 'AuthenticationError'],
  ['permission_denied', 'AuthenticationError'],
  ['not_found', 'SandboxError'],
  ['conflict', 'SandboxError'],
  ['invalid_argument', 'SandboxError'],
  ['resource_exhausted', 'SandboxError'],
  ['internal', 'SandboxError'],
  ['unavailable', 'ConnectionError'],
  ['some_future_code', 'SandboxSDKError'],
];

for (const [code, cls] of table) {
  test(`wire code ${code} -> ${cls}`, () => {
    const err = esm.errorFromWire({ code, message: `msg for ${code}`, retryAfterMs: 1500 }, 'sandbox:get');
    assert.equal(err.code, code);
    assert.equal(err.message, `msg for ${code}`);
    assert.equal(err.operation, 'sandbox:get');
    assert.equal(err.name, cls);
    for (const mod of [esm, cjs]) {
      assert.ok(err instanceof mod[cls], `instanceof ${cls}`);
      assert.ok(err instanceof mod.SandboxSDKError, 'instanceof SandboxSDKError');
      for (const other of CLASSES) {
        if (other !== cls && other !== 'SandboxSDKError') {
          assert.ok(!(err instanceof mod[other]), `not instanceof ${other}`);
        }
      }
    }
    assert.ok(err instanceof Error);
    assert.ok(typeof err.stack === 'string' && err.stack.includes(cls));
  });
}

test("a file op's permission_denied is the sandbox's, not the key's", () => {
  for (const op of ['file:read', 'file:write', 'file:upload:chunk']) {
    const err = esm.errorFromWire({ code: 'permission_denied', message: 'open /proc/x: permission denied' }, op);
    assert.ok(err instanceof esm.SandboxError, `${op}: ${err.name}`);
    assert.ok(!(err instanceof esm.AuthenticationError), op);
    assert.equal(err.code, 'permission_denied');
  }
  assert.ok(esm.errorFromWire({ code: 'permission_denied', message: 'only the admin key' }, 'key:create') instanceof esm.AuthenticationError);
});

test('RateLimitError.retryAfter is retryAfterMs', () => {
  const err = esm.errorFromWire({ code: 'rate_limited', message: 'slow down', retryAfterMs: 2500 });
  assert.equal(err.retryAfter, 2500);
  assert.deepEqual(JSON.parse(JSON.stringify(err)), {
    name: 'RateLimitError',
    code: 'rate_limited',
    message: 'slow down',
    retryAfter: 2500,
  });
  // A missing or bad retryAfterMs still gives a usable wait.
  assert.equal(esm.errorFromWire({ code: 'rate_limited', message: 'x' }).retryAfter, 1000);
  assert.equal(esm.errorFromWire({ code: 'rate_limited', message: 'x', retryAfterMs: -5 }).retryAfter, 1000);
});

test('a malformed wire error still gives a SandboxSDKError with a message', () => {
  for (const wire of [undefined, null, {}, { code: 42 }, { message: '' }]) {
    const err = esm.errorFromWire(wire, 'code:run');
    assert.ok(err instanceof esm.SandboxSDKError);
    assert.equal(err.code, 'internal');
    assert.ok(err.message.length > 0);
  }
});

test('errors made by one build are instances of the other build\'s classes', () => {
  const pairs = [
    [new cjs.TimeoutError('t'), 'TimeoutError'],
    [new cjs.RateLimitError('r', 10), 'RateLimitError'],
    [new cjs.ConnectionError('c'), 'ConnectionError'],
    [new esm.SandboxError('s', 'not_found'), 'SandboxError'],
    [new esm.AuthenticationError('a'), 'AuthenticationError'],
    [new esm.ValidationError('options.x', 'bad x'), 'ValidationError'],
  ];
  for (const [err, cls] of pairs) {
    for (const mod of [esm, cjs]) {
      assert.ok(err instanceof mod[cls], `${cls} across builds`);
      assert.ok(err instanceof mod.SandboxSDKError, `${cls} is a SandboxSDKError across builds`);
    }
    assert.ok(!(err instanceof esm.SandboxSDKError && !(err instanceof Error)));
  }
  assert.ok(!(new cjs.TimeoutError('t') instanceof esm.SandboxError));
  assert.ok(!({ code: 'timeout', message: 'x' } instanceof esm.TimeoutError), 'a plain object is not an error');
  assert.ok(!(null instanceof esm.SandboxSDKError) && !('x' instanceof esm.SandboxSDKError));
});

test('default codes of the classes', () => {
  assert.equal(new esm.SandboxSDKError('x').code, 'internal');
  assert.equal(new esm.ConnectionError('x').code, 'unavailable');
  assert.equal(new esm.TimeoutError('x').code, 'timeout');
  assert.equal(new esm.RateLimitError('x', 5).code, 'rate_limited');
  assert.equal(new esm.AuthenticationError('x').code, 'unauthenticated');
  const v = new esm.ValidationError('options.templateId', 'options.templateId is required');
  assert.equal(v.code, 'invalid_argument');
  assert.equal(v.field, 'options.templateId');
});

test('user subclasses keep ordinary instanceof', () => {
  class MyError extends esm.SandboxError {}
  const mine = new MyError('mine', 'conflict');
  assert.ok(mine instanceof MyError);
  assert.ok(mine instanceof esm.SandboxError);
  assert.ok(mine instanceof cjs.SandboxError);
  assert.ok(!(new esm.SandboxError('other') instanceof MyError));
  assert.equal(mine.name, 'MyError');
  assert.equal(mine.code, 'conflict');
});

test('cause is kept', () => {
  const cause = new Error('socket closed');
  const err = new esm.ConnectionError('lost', 'unavailable', { cause });
  assert.equal(err.cause, cause);
});
