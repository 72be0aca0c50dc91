// The README's Quick Start, Sandboxes and Templates examples, run as
// written against the real server (URL and key are the test server's).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import SandboxSDK, { SandboxError } from '../../dist/index.js';
import { assertGone, captureConsole, closeAll, deleteQuietly, newSDK, server, serverTest } from '../helpers/env.mjs';

after(closeAll);

serverTest('README Quick Start', async () => {
  const { url, apiKey } = server();
  let sdk;
  let sandboxId;
  const printed = await captureConsole(async () => {
    // Initialize SDK
    sdk = new SandboxSDK({
      apiKey: apiKey,
      serverUrl: url,
      enableLogging: true,
      logLevel: 'info'
    });

    // Connect to server
    await sdk.waitForConnection();

    // Create a sandbox
    const { sandbox } = await sdk.createSandbox({
      templateId: 'python-3-11',
      name: 'My Python Project'
    });
    sandboxId = sandbox.id;

    // Run code
    const result = await sdk.runCode(sandbox.id, `
      print("Hello from sandbox!")
      x = 10 + 20
      print(f"Result: {x}")
    `);

    console.log(result.execution.logs.stdout);

    // Cleanup
    await sdk.deleteSandbox(sandbox.id);
    sdk.disconnect();
  }).finally(async () => {
    // Only when the example stopped half-way (it disconnects at its end).
    if (sdk?.isReady() && sandboxId) {
      await deleteQuietly(sdk, sandboxId).catch(() => {});
      sdk.disconnect();
    }
  });
  const logged = printed.filter((p) => p.level === 'log').map((p) => p.args);
  assert.deepEqual(logged, [[['Hello from sandbox!', 'Result: 30']]]);
  // enableLogging with logLevel info: the SDK's own lines went to console.info.
  assert.ok(printed.some((p) => p.level === 'info' && String(p.args[0]).includes('connected to')));
});

test('README Sandboxes', async () => {
  const sdk = newSDK();
  await sdk.waitForConnection();
  const before = Date.now();

  // Create sandbox
  const { sandbox } = await sdk.createSandbox({
    templateId: 'python-3-11',
    name: 'Data Analysis',
    expiryTime: 3600000, // 1 hour
    initialEnvVars: {
      DEBUG: 'true',
      API_KEY: 'secret123'
    }
  });

  try {
    assert.match(sandbox.id, /\S/);
    assert.equal(sandbox.name, 'Data Analysis');
    assert.equal(sandbox.templateId, 'python-3-11');
    assert.ok(['creating', 'ready'].includes(sandbox.status), sandbox.status);
    assert.equal(sandbox.envVars.DEBUG, 'true');
    assert.equal(sandbox.envVars.API_KEY, 'secret123');
    assert.ok(sandbox.expiresAt, 'expiresAt is set');
    const life = Date.parse(sandbox.expiresAt) - Date.parse(sandbox.createdAt);
    assert.ok(Math.abs(life - 3600000) < 5000, `expires one hour after creation (got ${life} ms)`);
    assert.ok(Date.parse(sandbox.createdAt) >= before - 5000);

    // Check sandbox status
    const status = await sdk.getSandboxStatus(sandbox.id);
    assert.equal(status.id, sandbox.id);
    assert.ok(['creating', 'ready'].includes(status.status), status.status);

    // The environment reaches processes in the sandbox.
    assert.equal(await sdk.runTerminal(sandbox.id, 'echo "$DEBUG $API_KEY"'), 'true secret123');

    // List all sandboxes
    const sandboxes = await sdk.listSandboxes();
    assert.ok(sandboxes.some((s) => s.id === sandbox.id && s.name === 'Data Analysis'));
    assert.equal(sdk.getMetrics().activeSandboxes, sandboxes.filter((s) => s.status !== 'terminated').length);
  } finally {
    // Delete sandbox
    await sdk.deleteSandbox(sandbox.id);
  }

  // A deleted sandbox is gone: terminated, or not found at all.
  await assertGone(sdk, sandbox.id);
  assert.ok(!(await sdk.listSandboxes()).some((s) => s.id === sandbox.id));
  // Deleting again is not_found (a first delete is not retried into success).
  await assert.rejects(sdk.deleteSandbox(sandbox.id), (err) => err instanceof SandboxError && err.code === 'not_found');
});

test('README Templates: list and get', async () => {
  const sdk = newSDK();
  await sdk.waitForConnection();

  // Get available templates
  const templates = await sdk.getTemplates(1, 10); // page 1, 10 items per page

  // Get specific template
  const template = await sdk.getTemplate('python-3-11');

  assert.equal(templates.page, 1);
  assert.equal(templates.pageSize, 10);
  assert.ok(templates.total >= 3);
  const ids = templates.templates.map((t) => t.id);
  for (const id of ['python-3-11', 'nodejs-18', 'python-data-science']) assert.ok(ids.includes(id), `${id} in ${ids}`);
  assert.equal(template.id, 'python-3-11');
  assert.equal(template.language, 'python');
  assert.equal(template.defaultCwd, '/workspace');
  assert.equal(template.builtIn, true);
  assert.ok(Array.isArray(template.dependencies));

  // The version is the one that really runs.
  const { sandbox } = await sdk.createSandbox({ templateId: 'python-3-11' });
  try {
    const res = await sdk.runCommand(sandbox.id, ['python3', '--version']);
    const reported = (res.stdout[0] || res.stderr[0] || '').replace(/^Python /, '');
    assert.equal(reported, template.version);
  } finally {
    await sdk.deleteSandbox(sandbox.id);
  }

  // Paging.
  const first = await sdk.getTemplates(1, 1);
  const second = await sdk.getTemplates(2, 1);
  assert.equal(first.templates.length, 1);
  assert.equal(second.templates.length, 1);
  assert.notEqual(first.templates[0].id, second.templates[0].id);
  assert.equal(first.total, templates.total);

  await assert.rejects(sdk.getTemplate('no-such-template'), (err) => err instanceof SandboxError && err.code === 'not_found');
});

serverTest('README Templates: create custom template', async () => {
  const sdk = newSDK();
  await sdk.waitForConnection();

  // Create custom template
  const customTemplate = await sdk.createTemplate({
    name: 'Custom ML Stack',
    language: 'python',
    version: '3.11',
    dockerImage: 'python:3.11-slim',
    dependencies: ['pandas', 'numpy', 'scikit-learn'],
    installCommand: 'pip install -r requirements.txt',
    defaultEnvVars: {
      ML_ENV: 'production'
    }
  });

  assert.match(customTemplate.id, /\S/);
  assert.equal(customTemplate.name, 'Custom ML Stack');
  assert.equal(customTemplate.language, 'python');
  assert.deepEqual(customTemplate.dependencies, ['pandas', 'numpy', 'scikit-learn']);
  assert.equal(customTemplate.defaultEnvVars.ML_ENV, 'production');
  // It answers at once; the build goes on (here it cannot pull the image,
  // so it ends 'failed', with a reason).
  assert.ok(['building', 'ready', 'failed'].includes(customTemplate.status), customTemplate.status);
  const again = await sdk.getTemplate(customTemplate.id);
  assert.equal(again.id, customTemplate.id);
  assert.ok((await sdk.getTemplates(1, 100)).templates.some((t) => t.id === customTemplate.id));
});

serverTest('createSandbox with a network policy reports it; the server checks the allowlist', async () => {
  const sdk = newSDK();
  const { sandbox } = await sdk.createSandbox({
    templateId: 'python-3-11',
    network: { egress: 'allowlist', allow: ['Registry.NPMJS.org.', '203.0.113.7/24'] },
  });
  try {
    assert.deepEqual(sandbox.network, { egress: 'allowlist', allow: ['registry.npmjs.org', '203.0.113.0/24'] });
    const status = await sdk.getSandboxStatus(sandbox.id);
    assert.deepEqual(status.network, sandbox.network);
    await assert.rejects(
      sdk.createSandbox({ templateId: 'python-3-11', network: { egress: 'allowlist', allow: ['not a domain'] } }),
      (err) => err instanceof SandboxError && err.code === 'invalid_argument' && /network\.allow\[0\]/.test(err.message),
    );
  } finally {
    await deleteQuietly(sdk, sandbox.id);
  }
  const { sandbox: def } = await sdk.createSandbox({ templateId: 'python-3-11' });
  try {
    assert.equal(def.network.egress, 'internet', 'the server default');
  } finally {
    await deleteQuietly(sdk, def.id);
  }
});

serverTest('createSandbox with resources reports and enforces them', async () => {
  const sdk = newSDK();
  const { sandbox } = await sdk.createSandbox({ templateId: 'python-3-11', resources: { pids: 24, memoryMb: 96 } });
  try {
    assert.equal(sandbox.resources.pids, 24);
    assert.equal(sandbox.resources.memoryMb, 96);
    const status = await sdk.getSandboxStatus(sandbox.id);
    assert.deepEqual(status.resources, sandbox.resources);
    await assert.rejects(
      sdk.createSandbox({ templateId: 'python-3-11', resources: { pids: 1 << 30 } }),
      (err) => err instanceof SandboxError && err.code === 'invalid_argument' && /resources\.pids/.test(err.message),
    );
  } finally {
    await deleteQuietly(sdk, sandbox.id);
  }
});
