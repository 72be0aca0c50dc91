// Connection management against the real server: connect, authentication,
// disconnect and reconnect, socketOptions pass-through, and the README's
// "Connection Timeout" and "Environment-Specific Configuration" examples.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import SandboxSDK, { AuthenticationError, ConnectionError, SandboxSDKError } from '../../dist/index.js';
import { captureConsole, closeAll, deleteQuietly, newSDK, server } from '../helpers/env.mjs';

after(closeAll);

test('waitForConnection, isReady, disconnect', async () => {
  const sdk = newSDK();
  assert.equal(sdk.isReady(), false, 'not connected before anything is asked');
  await sdk.waitForConnection();
  assert.equal(sdk.isReady(), true);
  await sdk.waitForConnection(); // already connected: resolves at once
  sdk.disconnect();
  assert.equal(sdk.isReady(), false);
  await assert.rejects(sdk.listSandboxes(), ConnectionError);
  // waitForConnection connects again.
  await sdk.waitForConnection(10_000);
  assert.equal(sdk.isReady(), true);
  assert.ok(Array.isArray(await sdk.listSandboxes()));
  sdk.disconnect();
});

test('the first call connects by itself', async () => {
  const sdk = newSDK();
  const page = await sdk.getTemplates();
  assert.ok(page.templates.length > 0);
  assert.equal(sdk.isReady(), true);
  sdk.disconnect();
});

test('a bad API key is an AuthenticationError, at once', async () => {
  const { url } = server();
  const sdk = new SandboxSDK({ apiKey: 'not-the-key', serverUrl: url, maxRetries: 5, retryDelay: 1000 });
  const t0 = Date.now();
  await assert.rejects(sdk.waitForConnection(30_000), (err) => {
    assert.ok(err instanceof AuthenticationError, `got ${err?.name}: ${err?.message}`);
    assert.ok(err instanceof SandboxSDKError);
    assert.ok(!(err instanceof ConnectionError));
    assert.equal(err.code, 'unauthenticated');
    assert.match(err.message, /authentication failed/);
    return true;
  });
  // Not retried with backoff (5 retries from 1 s would take > 30 s).
  assert.ok(Date.now() - t0 < 10_000, 'an authentication failure is not retried');
  // A call gets the same error.
  await assert.rejects(sdk.listSandboxes(), AuthenticationError);
  assert.equal(sdk.isReady(), false);
  sdk.disconnect();
});

test('README Troubleshooting: Connection Timeout', async () => {
  const sdk = newSDK();
  const printed = await captureConsole(async () => {
    // Increase timeout
    await sdk.waitForConnection(30000); // 30 seconds

    // Check server URL and API key
    console.log(sdk.isReady());
  });
  assert.deepEqual(printed.map((p) => p.args), [[true]]);
  sdk.disconnect();
});

for (const [mode, socketOptions] of [
  ['websocket only', { transports: ['websocket'] }],
  ['long-polling only', { transports: ['polling'], upgrade: false }],
]) {
  test(`socketOptions are passed through (${mode})`, async () => {
    const sdk = newSDK({ socketOptions });
    let id;
    try {
      ({ sandbox: { id } } = await sdk.createSandbox({ templateId: 'python-3-11' }));
      const lines = [];
      const out = await sdk.runTerminal(id, 'for i in 1 2 3; do echo line-$i; done', { onStdout: (o) => lines.push(o.line) });
      assert.equal(out, 'line-1\nline-2\nline-3');
      assert.deepEqual(lines, ['line-1', 'line-2', 'line-3']);
    } finally {
      await deleteQuietly(sdk, id);
      sdk.disconnect();
    }
  });
}

test('socketOptions really reach socket.io-client (a wrong path cannot connect)', async () => {
  const sdk = newSDK({ socketOptions: { path: '/not-socket-io/' }, maxRetries: 0 });
  await assert.rejects(sdk.waitForConnection(10_000), ConnectionError);
  sdk.disconnect();
});

test('README Environment-Specific Configuration', async () => {
  const { url, apiKey } = server();
  const saved = { key: process.env.SDK_API_KEY, url: process.env.SDK_SERVER_URL };
  process.env.SDK_API_KEY = apiKey;
  process.env.SDK_SERVER_URL = url;
  const debugLines = [];
  const origDebug = console.debug;
  console.debug = (...a) => debugLines.push(a);
  try {
    // Development
    const devSdk = new SandboxSDK({
      apiKey: process.env.SDK_API_KEY,
      serverUrl: process.env.SDK_SERVER_URL,
      enableLogging: true,
      logLevel: 'debug',
      enableMetrics: true,
      timeout: 120000 // longer timeout for dev
    });

    // Production
    const prodSdk = new SandboxSDK({
      apiKey: process.env.SDK_API_KEY,
      serverUrl: process.env.SDK_SERVER_URL,
      enableLogging: false,
      enableMetrics: true,
      timeout: 60000,
      maxRetries: 3
    });

    await devSdk.waitForConnection();
    await prodSdk.waitForConnection();
    assert.ok((await devSdk.getTemplate('python-3-11')).id === 'python-3-11');
    assert.ok(Array.isArray(await prodSdk.listSandboxes()));
    assert.equal(devSdk.getMetrics().successfulRequests, 1);
    assert.equal(prodSdk.getMetrics().successfulRequests, 1);
    devSdk.disconnect();
    prodSdk.disconnect();
  } finally {
    console.debug = origDebug;
    if (saved.key === undefined) delete process.env.SDK_API_KEY;
    else process.env.SDK_API_KEY = saved.key;
    if (saved.url === undefined) delete process.env.SDK_SERVER_URL;
    else process.env.SDK_SERVER_URL = saved.url;
  }
  assert.ok(debugLines.some((a) => String(a[0]).includes('-> template:get')), 'the dev SDK logs at debug level');
  assert.ok(!debugLines.some((a) => String(a[0]).includes('-> sandbox:list')), 'the prod SDK does not log');
});

/** admin calls the HTTP key API with the test server's (admin) key. */
async function admin(method, path, body) {
  const { url, apiKey } = server();
  const res = await fetch(url + path, {
    method,
    headers: { Authorization: `Bearer ${apiKey}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : undefined;
}

test('a key of its own tenant; once revoked, calls fail with AuthenticationError (no reconnect loop)', async () => {
  const { url } = server();
  const name = `ts-sdk-${Date.now().toString(36)}`;
  const { key, secret } = await admin('POST', '/v1/keys', { name });
  const logs = [];
  const sdk = new SandboxSDK({
    apiKey: secret,
    serverUrl: url,
    retryDelay: 100,
    enableLogging: true,
    logLevel: 'warn',
    logger: { debug() {}, info() {}, warn: (m) => logs.push(m), error: (m) => logs.push(m) },
  });
  const adminSdk = newSDK();
  try {
    await sdk.waitForConnection();
    const { sandbox } = await sdk.createSandbox({ templateId: 'python-3-11' });
    // Another tenant's sandbox is invisible to the admin key's tenant and the reverse.
    await assert.rejects(adminSdk.getSandboxStatus(sandbox.id), (err) => err.code === 'not_found');
    assert.deepEqual((await sdk.listSandboxes()).map((s) => s.id), [sandbox.id]);
    await sdk.deleteSandbox(sandbox.id);

    await admin('DELETE', `/v1/keys/${key.id}`);
    await assert.rejects(sdk.listSandboxes(), (err) => {
      assert.ok(err instanceof AuthenticationError, `got ${err?.name}: ${err?.message}`);
      assert.equal(err.code, 'unauthenticated');
      return true;
    });
    await assert.rejects(sdk.waitForConnection(10_000), AuthenticationError);
    assert.equal(sdk.isReady(), false);
    const attempts = logs.length;
    await new Promise((r) => setTimeout(r, 1000));
    assert.ok(logs.length - attempts <= 1, `no reconnection loop with a revoked key: ${logs.slice(attempts).join('\n')}`);
  } finally {
    sdk.disconnect();
    adminSdk.disconnect();
  }
});
