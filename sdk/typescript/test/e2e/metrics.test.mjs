// The README's Monitoring & Metrics example against the real server.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import SandboxSDK from '../../dist/index.js';
import { captureConsole, closeAll, server } from '../helpers/env.mjs';

after(closeAll);

test('README Monitoring & Metrics', async () => {
  const { url, apiKey } = server();
  let sdk;
  let metrics;
  const printed = await captureConsole(async () => {
    sdk = new SandboxSDK({
      apiKey: apiKey,
      serverUrl: url,
      enableMetrics: true,
      metricsInterval: 30000, // collect every 30s
      enableLogging: true,
      logLevel: 'debug'
    });

    // Some work to measure.
    await sdk.waitForConnection();
    const { sandbox } = await sdk.createSandbox({ templateId: 'python-3-11' });
    const { sandbox: second } = await sdk.createSandbox({ templateId: 'python-3-11' });
    await sdk.runTerminal(sandbox.id, 'sleep 0.3; echo done');
    await sdk.getSandboxStatus(sandbox.id);
    await sdk.getSandboxStatus('sb-nope').catch(() => {});
    await sdk.deleteSandbox(second.id);

    // Get current metrics
    metrics = sdk.getMetrics();

    console.log({
      totalRequests: metrics.totalRequests,
      successfulRequests: metrics.successfulRequests,
      failedRequests: metrics.failedRequests,
      averageResponseTime: metrics.averageResponseTime,
      totalExecutionTime: metrics.totalExecutionTime,
      activeSandboxes: metrics.activeSandboxes
    });

    await sdk.deleteSandbox(sandbox.id);
    assert.equal(sdk.getMetrics().activeSandboxes, 0);
    sdk.disconnect();
  });
  assert.equal(metrics.totalRequests, 6);
  assert.equal(metrics.successfulRequests, 5);
  assert.equal(metrics.failedRequests, 1);
  assert.ok(metrics.averageResponseTime > 0);
  assert.ok(metrics.totalExecutionTime >= 300, `totalExecutionTime ${metrics.totalExecutionTime}`);
  assert.equal(metrics.activeSandboxes, 1);
  const shown = printed.find((p) => p.level === 'log');
  assert.deepEqual(Object.keys(shown.args[0]), [
    'totalRequests',
    'successfulRequests',
    'failedRequests',
    'averageResponseTime',
    'totalExecutionTime',
    'activeSandboxes',
  ]);
});

test('activeSandboxes follows listSandboxes', async () => {
  const { url, apiKey } = server();
  const a = new SandboxSDK({ apiKey, serverUrl: url });
  const b = new SandboxSDK({ apiKey, serverUrl: url });
  try {
    const { sandbox } = await a.createSandbox({ templateId: 'python-3-11' });
    assert.equal(a.getMetrics().activeSandboxes, 1);
    assert.equal(b.getMetrics().activeSandboxes, 0);
    const listed = await b.listSandboxes();
    assert.equal(b.getMetrics().activeSandboxes, listed.filter((s) => s.status !== 'terminated').length);
    assert.ok(b.getMetrics().activeSandboxes >= 1);
    await b.deleteSandbox(sandbox.id);
    const after = await a.listSandboxes();
    assert.ok(!after.some((s) => s.id === sandbox.id));
    assert.equal(a.getMetrics().activeSandboxes, after.filter((s) => s.status !== 'terminated').length);
  } finally {
    a.disconnect();
    b.disconnect();
  }
});
