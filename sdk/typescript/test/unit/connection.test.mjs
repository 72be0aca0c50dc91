// Connection behaviour that needs no sdbx server: an unreachable server, a
// server that accepts TCP but never answers, and calls after disconnect().
// The test process exiting at all shows that a failed SDK leaves nothing
// running.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import SandboxSDK, { ConnectionError, SandboxSDKError, TimeoutError } from '../../dist/index.js';

async function closedPort() {
  const srv = net.createServer();
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address();
  await new Promise((r) => srv.close(r));
  return port;
}

test('waitForConnection rejects with ConnectionError when the server cannot be reached', async () => {
  const port = await closedPort();
  const attempts = [];
  const sdk = new SandboxSDK({
    apiKey: 'k',
    serverUrl: `http://127.0.0.1:${port}`,
    maxRetries: 2,
    retryDelay: 10,
    enableLogging: true,
    logLevel: 'warn',
    logger: { debug() {}, info() {}, warn: (m) => attempts.push(m), error() {} },
  });
  await assert.rejects(sdk.waitForConnection(30_000), (err) => {
    assert.ok(err instanceof ConnectionError, `got ${err}`);
    assert.ok(err instanceof SandboxSDKError);
    assert.equal(err.code, 'unavailable');
    assert.match(err.message, /could not connect to http:\/\/127\.0\.0\.1:\d+ after 3 attempt/);
    return true;
  });
  // 1 attempt + maxRetries retries.
  assert.equal(attempts.filter((m) => m.includes('connection attempt')).length, 3);
  assert.equal(sdk.isReady(), false);
  // A call made afterwards tries again, and fails the same way.
  await assert.rejects(sdk.getTemplates(), ConnectionError);
  sdk.disconnect();
});

test('waitForConnection gives up at its timeout when the server never answers', async () => {
  const sockets = new Set();
  const silent = net.createServer((s) => sockets.add(s));
  await new Promise((r) => silent.listen(0, '127.0.0.1', r));
  const sdk = new SandboxSDK({ apiKey: 'k', serverUrl: `http://127.0.0.1:${silent.address().port}`, maxRetries: 0 });
  try {
    await assert.rejects(sdk.waitForConnection(300), (err) => {
      assert.ok(err instanceof ConnectionError, `got ${err}`);
      assert.ok(!(err instanceof TimeoutError));
      assert.match(err.message, /within 300 ms/);
      return true;
    });
  } finally {
    sdk.disconnect();
    for (const s of sockets) s.destroy();
    silent.close();
  }
});

test('calls after disconnect() fail with ConnectionError without connecting', async () => {
  let connections = 0;
  const srv = net.createServer((s) => {
    connections++;
    s.destroy();
  });
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  const sdk = new SandboxSDK({ apiKey: 'k', serverUrl: `http://127.0.0.1:${srv.address().port}` });
  sdk.disconnect();
  try {
    await assert.rejects(sdk.listSandboxes(), (err) => {
      assert.ok(err instanceof ConnectionError);
      assert.match(err.message, /disconnected/);
      return true;
    });
    await assert.rejects(sdk.runCode('sb-1', 'print(1)'), ConnectionError);
    assert.equal(connections, 0);
    const m = sdk.getMetrics();
    assert.equal(m.totalRequests, 2);
    assert.equal(m.failedRequests, 2);
  } finally {
    srv.close();
  }
});

test('waitForConnection after disconnect() connects again', async () => {
  const port = await closedPort();
  const sdk = new SandboxSDK({ apiKey: 'k', serverUrl: `http://127.0.0.1:${port}`, maxRetries: 0 });
  sdk.disconnect();
  // It tries (and fails, nothing listens): the error is the connection
  // failure, not "disconnected".
  await assert.rejects(sdk.waitForConnection(5000), (err) => {
    assert.ok(err instanceof ConnectionError);
    assert.match(err.message, /could not connect/);
    return true;
  });
  sdk.disconnect();
});
