// Per-key caps and disk quotas over Socket.IO, with a server of this
// test's own (sdbx serve --max-sandboxes-per-key 1 --max-executions-per-key 1)
// and a key made by its admin key: past a cap the call fails with
// RateLimitError (code rate_limited, retryAfter in ms), and the slot comes
// back once the sandbox is deleted or the run has ended. resources.diskMb
// is reported and enforced.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import SandboxSDK, { RateLimitError } from '../../dist/index.js';
import { deleteQuietly, sdbxBin } from '../helpers/env.mjs';
import { startServer } from '../helpers/server.mjs';

let srv;
let sdk;

before(async () => {
  srv = await startServer({
    bin: sdbxBin(),
    args: ['--pool', 'none', '--max-sandboxes-per-key', '1', '--max-executions-per-key', '1'],
  });
  const res = await fetch(`${srv.url}/v1/keys`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${srv.apiKey}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ name: 'capped' }),
  });
  assert.equal(res.status, 201);
  const { secret } = await res.json();
  sdk = new SandboxSDK({ apiKey: secret, serverUrl: srv.url, maxRetries: 0 });
  await sdk.waitForConnection();
});

after(async () => {
  sdk?.disconnect();
  if (srv) await srv.stop();
});

function isCapped(operation) {
  return (err) => {
    assert.ok(err instanceof RateLimitError, `${err}`);
    assert.equal(err.code, 'rate_limited');
    assert.equal(err.operation, operation);
    assert.ok(err.retryAfter > 0, `retryAfter ${err.retryAfter}`);
    assert.match(err.message, /per-key/);
    return true;
  };
}

test('caps on sandboxes and executions per key; diskMb enforced', async () => {
  const { sandbox } = await sdk.createSandbox({ templateId: 'python-3-11', resources: { diskMb: 64 } });
  try {
    assert.equal(sandbox.resources.diskMb, 64);
    assert.equal((await sdk.getSandboxStatus(sandbox.id)).resources.diskMb, 64);
    await assert.rejects(sdk.createSandbox({ templateId: 'python-3-11' }), isCapped('sandbox:create'));

    // While one run is in flight, a second is refused.
    let second;
    const first = sdk.runCode(sandbox.id, "import time\nprint('started', flush=True)\ntime.sleep(1)", {
      onStdout: () => {
        second ??= sdk.runCode(sandbox.id, '1').then(
          () => assert.fail('a second run passed the cap'),
          (err) => isCapped('code:run')(err),
        );
      },
    });
    await first;
    assert.ok(second, 'the first run printed nothing');
    await second;

    // The slot is back; a disk fill stops at the quota.
    const fill = await sdk.runCode(sandbox.id, "open('/workspace/big', 'wb').write(b'0' * (100 << 20))");
    assert.ok(fill.execution.error, 'writing 100 MiB with diskMb 64 succeeded');
    assert.match(`${fill.execution.error.value}`, /Disk quota exceeded/);
  } finally {
    await deleteQuietly(sdk, sandbox.id);
  }
  // After the delete the key may create again.
  const { sandbox: next } = await sdk.createSandbox({ templateId: 'python-3-11' });
  await deleteQuietly(sdk, next.id);
});
