// Rate limiting, with a server of this test's own started with a low
// per-key limit (sdbx serve --rate-limit 5 --rate-burst 10): a burst is
// refused with RateLimitError carrying retryAfter in ms; waiting that long
// is enough; and the README's "Rate Limit Exceeded" handling, as written.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import SandboxSDK, { RateLimitError, SandboxSDKError } from '../../dist/index.js';
import { sdbxBin, serverTest, sleep } from '../helpers/env.mjs';
import { startServer } from '../helpers/server.mjs';

const RATE = 5;
const BURST = 10;

let srv;
let sdk;

before(async () => {
  srv = await startServer({ bin: sdbxBin(), args: ['--rate-limit', String(RATE), '--rate-burst', String(BURST)] });
  sdk = new SandboxSDK({ apiKey: srv.apiKey, serverUrl: srv.url, maxRetries: 0 });
  await sdk.waitForConnection();
});

after(async () => {
  sdk?.disconnect();
  if (srv) await srv.stop();
});

/** burst sends n cheap calls at once and returns the RateLimitErrors among the failures. */
async function burst(n) {
  const results = await Promise.allSettled(Array.from({ length: n }, () => sdk.getTemplate('python-3-11')));
  const limited = [];
  for (const r of results) {
    if (r.status === 'fulfilled') continue;
    if (r.reason instanceof RateLimitError) limited.push(r.reason);
    else throw r.reason;
  }
  return { limited, ok: results.filter((r) => r.status === 'fulfilled').length };
}

test('a burst over the limit gets RateLimitError with retryAfter in ms', async () => {
  const { limited, ok } = await burst(5 * BURST);
  assert.ok(limited.length > 0, `no call of ${5 * BURST} was rate-limited (server started with --rate-limit ${RATE} --rate-burst ${BURST})`);
  assert.ok(ok >= 1 && ok <= 5 * BURST - limited.length);
  const err = limited[0];
  assert.ok(err instanceof SandboxSDKError);
  assert.equal(err.code, 'rate_limited');
  assert.equal(err.operation, 'template:get');
  assert.equal(typeof err.retryAfter, 'number');
  assert.ok(err.retryAfter > 0 && err.retryAfter <= 60_000, `retryAfter ${err.retryAfter} ms`);
  assert.ok(sdk.getMetrics().rateLimitedRequests >= limited.length);

  // Calls are not retried automatically on rate_limited; waiting retryAfter is enough.
  const wait = Math.max(...limited.map((e) => e.retryAfter));
  await sleep(wait);
  const tpl = await sdk.getTemplate('python-3-11');
  assert.equal(tpl.id, 'python-3-11');
});

serverTest('README Troubleshooting: Rate Limit Exceeded', async () => {
  const { sandbox } = await retryingCreate();
  const sandboxId = sandbox.id;
  const code = 'print("after the wait")';
  try {
    // Empty the bucket, so that the README's call is refused.
    await burst(3 * BURST);
    let retried;
    let waited = false;

    // Handle rate limit error
    try {
      await sdk.runCode(sandboxId, code);
    } catch (error) {
      if (error instanceof RateLimitError) {
        await new Promise(resolve => 
          setTimeout(resolve, error.retryAfter)
        );
        waited = true;
        // Retry
        retried = await sdk.runCode(sandboxId, code);
      } else {
        throw error;
      }
    }

    assert.ok(waited, 'the first runCode was rate-limited');
    assert.deepEqual(retried.execution.logs.stdout, ['after the wait']);
  } finally {
    await sleep(1000); // the bucket refills
    await sdk.deleteSandbox(sandboxId);
  }
});

/** retryingCreate creates a sandbox, waiting out rate limits left by the test before. */
async function retryingCreate() {
  for (;;) {
    try {
      return await sdk.createSandbox({ templateId: 'python-3-11' });
    } catch (e) {
      if (!(e instanceof RateLimitError)) throw e;
      await sleep(e.retryAfter);
    }
  }
}
