// Connection loss with a real server of this test's own, restarted on the
// same port and data directory: a stream in flight fails loudly with
// ConnectionError (never hangs, never resolves as if complete), the SDK
// reconnects by itself, and an idempotent call made while the server is
// down is retried until it answers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import SandboxSDK, { ConnectionError } from '../../dist/index.js';
import { sdbxBin, sleep } from '../helpers/env.mjs';
import { freePort, randomKey, removeDir, startServer } from '../helpers/server.mjs';

test('server restart: in-flight stream fails with ConnectionError; reconnection and retries are transparent', async () => {
  const bin = sdbxBin();
  const apiKey = randomKey();
  const port = await freePort();
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'sdbx-ts-restart-'));
  let srv = await startServer({ bin, apiKey, port, dataDir });
  const logs = [];
  const sdk = new SandboxSDK({
    apiKey,
    serverUrl: srv.url,
    timeout: 30_000,
    maxRetries: 5,
    retryDelay: 200,
    enableLogging: true,
    logLevel: 'warn',
    logger: { debug() {}, info() {}, warn: (m) => logs.push(m), error: (m) => logs.push(m) },
  });
  try {
    await sdk.waitForConnection();
    const { sandbox } = await sdk.createSandbox({ templateId: 'python-3-11' });

    // A command that streams, then runs long.
    let markStarted;
    const started = new Promise((r) => (markStarted = r));
    const lines = [];
    const inflight = sdk
      .runTerminal(sandbox.id, 'echo started; sleep 120; echo never', {
        timeoutMs: 180_000,
        onStdout: (o) => {
          lines.push(o.line);
          if (o.line === 'started') markStarted();
        },
      })
      .then(
        (value) => ({ value }),
        (error) => ({ error }),
      );
    await started;

    await srv.stop({ removeDataDir: false });
    const outcome = await inflight;
    assert.ok(outcome.error, `the cut command must fail, it resolved with ${JSON.stringify(outcome.value)}`);
    assert.ok(outcome.error instanceof ConnectionError, `got ${outcome.error?.name}: ${outcome.error?.message}`);
    assert.equal(outcome.error.code, 'unavailable');
    assert.deepEqual(lines, ['started']);
    assert.equal(sdk.isReady(), false);

    // An idempotent call while the server is down waits for it.
    const listing = sdk.listSandboxes();
    await sleep(1000);
    srv = await startServer({ bin, apiKey, port, dataDir });
    const list = await listing;
    assert.ok(Array.isArray(list));
    assert.equal(sdk.isReady(), true, 'reconnected without waitForConnection()');

    // Everything works again on the new connection.
    const { sandbox: fresh } = await sdk.createSandbox({ templateId: 'python-3-11' });
    assert.equal(await sdk.runTerminal(fresh.id, 'echo back'), 'back');
    await sdk.deleteSandbox(fresh.id);
    // The sandbox made before the restart was adopted by the new server;
    // delete it too (sandboxes outlive a stopped server).
    assert.equal((await sdk.getSandboxStatus(sandbox.id)).status, 'ready');
    await sdk.deleteSandbox(sandbox.id);
    assert.ok(logs.some((m) => m.includes('connection lost')), logs.join('\n'));
  } finally {
    sdk.disconnect();
    await srv.stop({ removeDataDir: false }).catch((e) => console.error(e.message));
    await removeDir(dataDir);
  }
});

test('a stopped server makes pending and new calls fail within their bounds', async () => {
  const bin = sdbxBin();
  const srv = await startServer({ bin });
  const sdk = new SandboxSDK({ apiKey: srv.apiKey, serverUrl: srv.url, timeout: 3000, maxRetries: 1, retryDelay: 100 });
  try {
    await sdk.waitForConnection();
    await srv.stop();
    const t0 = Date.now();
    await assert.rejects(sdk.getTemplates(), ConnectionError);
    await assert.rejects(sdk.createSandbox({ templateId: 'python-3-11' }), ConnectionError);
    assert.ok(Date.now() - t0 < 20_000, 'bounded by timeout and retries');
  } finally {
    sdk.disconnect();
  }
});
