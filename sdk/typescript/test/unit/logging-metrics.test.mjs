// Log level filtering and the metrics counters/timer, without a server.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import SandboxSDK, { ConnectionError } from '../../dist/index.js';

async function closedPort() {
  const srv = net.createServer();
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address();
  await new Promise((r) => srv.close(r));
  return port;
}

function recorder() {
  const lines = [];
  const sink = {};
  for (const level of ['debug', 'info', 'warn', 'error']) sink[level] = (msg, ...meta) => lines.push({ level, msg, meta });
  return { lines, sink };
}

// Each run: construct (debug line), fail to connect (warn lines), call
// after a failed connection (debug line).
async function logsAt(extra) {
  const port = await closedPort();
  const { lines, sink } = recorder();
  const sdk = new SandboxSDK({ apiKey: 'secret-key-value', serverUrl: `http://127.0.0.1:${port}`, maxRetries: 1, retryDelay: 5, logger: sink, ...extra });
  await assert.rejects(sdk.waitForConnection(10_000), ConnectionError);
  sdk.disconnect();
  return lines;
}

test('logLevel debug logs every level', async () => {
  const lines = await logsAt({ enableLogging: true, logLevel: 'debug' });
  const levels = new Set(lines.map((l) => l.level));
  assert.ok(levels.has('debug'), 'debug lines');
  assert.ok(levels.has('warn'), 'warn lines');
  assert.ok(lines.every((l) => l.msg.startsWith('[sdb-x-sdk] ')), 'prefixed');
  assert.ok(lines.every((l) => /\[sdb-x-sdk\] \d{4}-\d\d-\d\dT\S+Z (DEBUG|INFO|WARN|ERROR) /.test(l.msg)), 'timestamp and level');
});

test('logLevel warn drops debug and info', async () => {
  const lines = await logsAt({ enableLogging: true, logLevel: 'warn' });
  assert.ok(lines.length > 0);
  assert.ok(lines.every((l) => l.level === 'warn' || l.level === 'error'), JSON.stringify(lines));
});

test('logLevel error drops warn', async () => {
  const lines = await logsAt({ enableLogging: true, logLevel: 'error' });
  assert.ok(lines.every((l) => l.level === 'error'), JSON.stringify(lines));
});

test('logLevel defaults to info', async () => {
  const lines = await logsAt({ enableLogging: true });
  assert.ok(lines.length > 0);
  assert.ok(!lines.some((l) => l.level === 'debug'), JSON.stringify(lines));
});

test('enableLogging false (the default) logs nothing', async () => {
  assert.deepEqual(await logsAt({ logLevel: 'debug' }), []);
  assert.deepEqual(await logsAt({}), []);
});

test('the default sink is console, and the API key is never logged', async () => {
  const seen = [];
  const orig = { debug: console.debug, info: console.info, warn: console.warn, error: console.error };
  for (const k of Object.keys(orig)) console[k] = (...a) => seen.push([k, ...a]);
  try {
    const port = await closedPort();
    const sdk = new SandboxSDK({ apiKey: 'secret-key-value', serverUrl: `http://127.0.0.1:${port}`, maxRetries: 0, enableLogging: true, logLevel: 'debug' });
    await assert.rejects(sdk.waitForConnection(5000), ConnectionError);
    sdk.disconnect();
  } finally {
    Object.assign(console, orig);
  }
  assert.ok(seen.some(([k]) => k === 'debug'));
  assert.ok(seen.some(([k]) => k === 'warn'));
  assert.ok(!JSON.stringify(seen).includes('secret-key-value'));
});

test('a throwing logger does not break the SDK', async () => {
  const port = await closedPort();
  const bad = { debug() { throw new Error('x'); }, info() { throw new Error('x'); }, warn() { throw new Error('x'); }, error() { throw new Error('x'); } };
  const sdk = new SandboxSDK({ apiKey: 'k', serverUrl: `http://127.0.0.1:${port}`, maxRetries: 0, enableLogging: true, logLevel: 'debug', logger: bad });
  await assert.rejects(sdk.waitForConnection(5000), ConnectionError);
  sdk.disconnect();
});

test('getMetrics starts at zero and counts failed calls', async () => {
  const port = await closedPort();
  const sdk = new SandboxSDK({ apiKey: 'k', serverUrl: `http://127.0.0.1:${port}`, maxRetries: 0, retryDelay: 1 });
  const m0 = sdk.getMetrics();
  for (const k of ['totalRequests', 'successfulRequests', 'failedRequests', 'averageResponseTime', 'totalExecutionTime', 'activeSandboxes']) {
    assert.equal(m0[k], 0, k);
  }
  await assert.rejects(sdk.listSandboxes(), ConnectionError);
  await assert.rejects(sdk.runTerminal('sb-1', 'echo hi'), ConnectionError);
  const m = sdk.getMetrics();
  assert.equal(m.totalRequests, 2);
  assert.equal(m.successfulRequests, 0);
  assert.equal(m.failedRequests, 2);
  assert.ok(m.averageResponseTime >= 0);
  assert.ok(m.totalExecutionTime >= 0);
  assert.equal(typeof m.timestamp, 'number');
  sdk.disconnect();
});

test('enableMetrics collects every metricsInterval until disconnect()', async () => {
  const snaps = [];
  const sdk = new SandboxSDK({ apiKey: 'k', serverUrl: 'http://127.0.0.1:1', enableMetrics: true, metricsInterval: 20, onMetrics: (m) => snaps.push(m) });
  await new Promise((r) => setTimeout(r, 150));
  sdk.disconnect();
  const n = snaps.length;
  assert.ok(n >= 2, `collected ${n} snapshots`);
  assert.equal(snaps[0].totalRequests, 0);
  await new Promise((r) => setTimeout(r, 80));
  assert.equal(snaps.length, n, 'no collection after disconnect()');
});

test('without enableMetrics nothing is collected periodically', async () => {
  const snaps = [];
  const sdk = new SandboxSDK({ apiKey: 'k', serverUrl: 'http://127.0.0.1:1', metricsInterval: 10, onMetrics: (m) => snaps.push(m) });
  await new Promise((r) => setTimeout(r, 60));
  sdk.disconnect();
  assert.equal(snaps.length, 0);
});

test('metrics snapshots are logged at debug level', async () => {
  const { lines, sink } = recorder();
  const sdk = new SandboxSDK({ apiKey: 'k', serverUrl: 'http://127.0.0.1:1', enableMetrics: true, metricsInterval: 15, enableLogging: true, logLevel: 'debug', logger: sink });
  await new Promise((r) => setTimeout(r, 80));
  sdk.disconnect();
  const m = lines.find((l) => l.msg.endsWith(' metrics'));
  assert.ok(m, JSON.stringify(lines));
  assert.equal(m.meta[0].totalRequests, 0);
});
