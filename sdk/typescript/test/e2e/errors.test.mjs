// Errors from the real server: the README's Error Handling example in each
// of its branches, server-side bad input and not_found, and Best Practices.
// (Rate limiting: ratelimit.test.mjs.)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import SandboxSDK, {
  SandboxSDKError,
  ConnectionError,
  TimeoutError,
  SandboxError,
  RateLimitError
} from '../../dist/index.js';
import { assertGone, captureConsole, closeSandbox, newSDK, openSandbox, server, serverTest } from '../helpers/env.mjs';

let sdk;
let sandbox;

before(async () => ({ sdk, sandbox } = await openSandbox('error tests')));
after(() => closeSandbox(sdk, sandbox));

/** The README's Error Handling example, as written, around one runCode call. */
async function readmeErrorHandling(sdk, sandboxId, code) {
  return captureConsole(async () => {
    try {
      await sdk.runCode(sandboxId, code);
    } catch (error) {
      if (error instanceof RateLimitError) {
        console.log(`Rate limited. Retry after ${error.retryAfter}ms`);
      } else if (error instanceof TimeoutError) {
        console.log('Operation timed out');
      } else if (error instanceof ConnectionError) {
        console.log('Connection failed');
      } else if (error instanceof SandboxError) {
        console.log('Sandbox error:', error.message);
      } else if (error instanceof SandboxSDKError) {
        console.log('SDK error:', error.message);
      }
    }
  });
}

function said(printed) {
  return printed.map((p) => p.args.join(' '));
}

serverTest('README Error Handling: SandboxError for an unknown sandbox', async () => {
  const printed = await readmeErrorHandling(sdk, 'sb-doesnotexist', 'print(1)');
  assert.equal(printed.length, 1);
  assert.match(said(printed)[0], /^Sandbox error: .*sb-doesnotexist.*not found/);
});

serverTest('README Error Handling: TimeoutError', async () => {
  const short = newSDK({ timeout: 1000 });
  const printed = await readmeErrorHandling(short, sandbox.id, 'import time\ntime.sleep(20)');
  assert.deepEqual(said(printed), ['Operation timed out']);
  short.disconnect();
});

test('README Error Handling: ConnectionError', async () => {
  const gone = newSDK();
  gone.disconnect();
  const printed = await readmeErrorHandling(gone, sandbox.id, 'print(1)');
  assert.deepEqual(said(printed), ['Connection failed']);
});

test('README Error Handling: SandboxSDKError (bad input, caught before sending)', async () => {
  const printed = await readmeErrorHandling(sdk, sandbox.id, '');
  assert.deepEqual(said(printed), ['SDK error: code must not be empty']);
});

test('server-side invalid input is a SandboxError invalid_argument naming the field', async () => {
  const cases = [
    [{ templateId: 'python-3-11', name: 'n'.repeat(200) }, /name/],
    [{ templateId: 'python-3-11', expiryTime: 8 * 24 * 3600 * 1000 }, /expiryTime|expiry/],
    [{ templateId: 'python-3-11', initialEnvVars: { 'BAD-NAME': 'x' } }, /BAD-NAME|initialEnvVars|env/],
  ];
  for (const [opts, field] of cases) {
    await assert.rejects(sdk.createSandbox(opts), (err) => {
      assert.ok(err instanceof SandboxError, `got ${err?.name}: ${err?.message}`);
      assert.ok(err instanceof SandboxSDKError);
      assert.equal(err.code, 'invalid_argument');
      assert.equal(err.operation, 'sandbox:create');
      assert.match(err.message, field);
      return true;
    });
  }
});

test('not_found for an unknown template or sandbox', async () => {
  await assert.rejects(sdk.createSandbox({ templateId: 'no-such-template' }), (err) => {
    assert.ok(err instanceof SandboxError);
    assert.equal(err.code, 'not_found');
    assert.match(err.message, /no-such-template/);
    return true;
  });
  for (const call of [() => sdk.getSandboxStatus('sb-nope'), () => sdk.deleteSandbox('sb-nope')]) {
    await assert.rejects(call(), (err) => err instanceof SandboxError && err.code === 'not_found');
  }
});

test('failed calls are counted', async () => {
  const s = newSDK();
  await assert.rejects(s.getSandboxStatus('sb-nope'), SandboxError);
  await s.getTemplate('python-3-11');
  const m = s.getMetrics();
  assert.equal(m.totalRequests, 2);
  assert.equal(m.failedRequests, 1);
  assert.equal(m.successfulRequests, 1);
  s.disconnect();
});

serverTest('README Best Practices', async () => {
  const sdk = newSDK();
  const logged = [];
  const logger = { error: (...a) => logged.push(a) };
  const MAX_SANDBOXES = 0;
  let cleanedUp = false;

  // 2. Use Environment Variables (set and unset ones)
  const saved = { db: process.env.DATABASE_URL, key: process.env.API_KEY };
  process.env.DATABASE_URL = 'postgres://db.invalid/app';
  delete process.env.API_KEY;
  let sandbox;
  try {
    ({ sandbox } = await sdk.createSandbox({
      templateId: 'python-3-11',
      initialEnvVars: {
        DATABASE_URL: process.env.DATABASE_URL,
        API_KEY: process.env.API_KEY
      }
    }));
  } finally {
    if (saved.db === undefined) delete process.env.DATABASE_URL;
    else process.env.DATABASE_URL = saved.db;
    if (saved.key !== undefined) process.env.API_KEY = saved.key;
  }
  const sandboxId = sandbox.id;
  assert.equal(sandbox.envVars.DATABASE_URL, 'postgres://db.invalid/app');
  assert.ok(!('API_KEY' in sandbox.envVars), 'an unset variable is left out');

  // 1. Always Clean Up Resources
  try {
    // Your code
    // 3. Implement Error Handling
    const code = 'raise ValueError("bad value")';
    const result = await sdk.runCode(sandboxId, code, {
      onError: (error) => {
        logger.error('Code execution failed', { error });
      }
    });
    assert.equal(result.execution.error.name, 'ValueError');
    assert.equal(logged.length, 1);
    assert.equal(logged[0][0], 'Code execution failed');
    assert.equal(logged[0][1].error.value, 'bad value');

    // 4. Monitor Resource Usage
    const metrics = sdk.getMetrics();
    if (metrics.activeSandboxes > MAX_SANDBOXES) {
      // Implement cleanup logic
      cleanedUp = true;
    }
  } finally {
    await sdk.deleteSandbox(sandboxId);
  }
  assert.ok(cleanedUp, 'activeSandboxes counted the sandbox');
  assert.equal(sdk.getMetrics().activeSandboxes, 0);
  await assertGone(sdk, sandboxId);
});

test('an SDK with a wrong server URL fails with ConnectionError, not a hang', async () => {
  const { apiKey } = server();
  const s = new SandboxSDK({ apiKey, serverUrl: 'http://127.0.0.1:9', maxRetries: 1, retryDelay: 50 });
  await assert.rejects(s.createSandbox({ templateId: 'python-3-11' }), ConnectionError);
  s.disconnect();
});
