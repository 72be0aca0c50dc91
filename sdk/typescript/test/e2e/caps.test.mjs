// Per-key caps and disk quotas over Socket.IO, with a server of this
// test's own (sdbx serve --max-sandboxes-per-key 1 --max-executions-per-key 1)
// and a key made by its admin key: past a cap the call fails with
// RateLimitError (code rate_limited, retryAfter in ms), and the slot comes
// back once the sandbox is deleted or the run has ended. resources.diskMb
// is reported and enforced; a write past it is a SandboxError with code
// resource_exhausted (over file:write and the chunked upload), never a
// RateLimitError, and deleting files makes room again.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import SandboxSDK, { RateLimitError, SandboxError } from '../../dist/index.js';
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

/** isDiskFull checks a write's refusal for a full disk quota. */
function isDiskFull(operation) {
  return (err) => {
    assert.ok(err instanceof SandboxError, `${err} (${err?.name})`);
    assert.ok(!(err instanceof RateLimitError), 'a full disk is not a rate limit');
    assert.equal(err.code, 'resource_exhausted');
    assert.match(err.operation, operation);
    assert.match(err.message, /disk quota exceeded/);
    assert.match(err.message, /diskMb/);
    assert.equal(err.retryAfter, undefined);
    return true;
  };
}

test('a write past diskMb is a SandboxError resource_exhausted, not a RateLimitError', async () => {
  const { sandbox } = await sdk.createSandbox({ templateId: 'python-3-11', resources: { diskMb: 64 } });
  try {
    const fill = await sdk.runCommand(sandbox.id, 'dd if=/dev/zero of=/workspace/big bs=1M count=100');
    assert.notEqual(fill.exitCode, 0, 'writing 100 MiB with diskMb 64 succeeded');
    assert.match(fill.stderr.join('\n'), /Disk quota exceeded/);

    // One message (file:write) and the chunked upload (file:upload:*).
    await assert.rejects(
      sdk.writeFile({ sandboxId: sandbox.id, path: '/workspace/more' }, new Uint8Array(4 << 20)),
      isDiskFull(/^file:write$/),
    );
    await assert.rejects(
      sdk.uploadFile(sandbox.id, '/workspace/upload', new Uint8Array(32 << 20)),
      isDiskFull(/^file:upload:/),
    );

    // Deleting files frees the quota: the same write then passes.
    await sdk.deleteFile({ sandboxId: sandbox.id, path: '/workspace/big' });
    assert.equal(await sdk.writeFile({ sandboxId: sandbox.id, path: '/workspace/more' }, new Uint8Array(4 << 20)), '/workspace/more');
  } finally {
    await deleteQuietly(sdk, sandbox.id);
  }
});
