// Bad input is rejected with a SandboxSDKError (ValidationError) naming the
// field, before anything is sent: the SDK under test points at a TCP
// listener that counts connections, and none may arrive.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import SandboxSDK, { SandboxSDKError, ValidationError } from '../../dist/index.js';

let listener;
let connections = 0;
let url;

before(async () => {
  listener = net.createServer((sock) => {
    connections++;
    sock.destroy();
  });
  await new Promise((r) => listener.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${listener.address().port}`;
});

after(() => listener.close());

function sdk() {
  return new SandboxSDK({ apiKey: 'k', serverUrl: url, maxRetries: 0, retryDelay: 1 });
}

function assertField(err, field) {
  assert.ok(err instanceof SandboxSDKError, `SandboxSDKError, got ${err}`);
  assert.ok(err instanceof ValidationError, `ValidationError, got ${err?.name}`);
  assert.equal(err.code, 'invalid_argument');
  assert.equal(err.field, field, `field of: ${err.message}`);
  assert.ok(err.message.includes(field), `message names ${field}: ${err.message}`);
}

const config = { apiKey: 'k', serverUrl: 'http://127.0.0.1:1' };

const badConfigs = [
  [undefined, 'config'],
  ['http://x', 'config'],
  [{ serverUrl: 'http://127.0.0.1:1' }, 'config.apiKey'],
  [{ ...config, apiKey: '' }, 'config.apiKey'],
  [{ ...config, apiKey: 42 }, 'config.apiKey'],
  [{ apiKey: 'k' }, 'config.serverUrl'],
  [{ ...config, serverUrl: 'localhost:3000' }, 'config.serverUrl'],
  [{ ...config, serverUrl: 'ftp://host' }, 'config.serverUrl'],
  [{ ...config, serverUrl: 'not a url' }, 'config.serverUrl'],
  [{ ...config, timeout: '60000' }, 'config.timeout'],
  [{ ...config, timeout: 0 }, 'config.timeout'],
  [{ ...config, timeout: 1.5 }, 'config.timeout'],
  [{ ...config, maxRetries: -1 }, 'config.maxRetries'],
  [{ ...config, maxRetries: '3' }, 'config.maxRetries'],
  [{ ...config, retryDelay: NaN }, 'config.retryDelay'],
  [{ ...config, enableLogging: 'yes' }, 'config.enableLogging'],
  [{ ...config, logLevel: 'verbose' }, 'config.logLevel'],
  [{ ...config, enableMetrics: 1 }, 'config.enableMetrics'],
  [{ ...config, metricsInterval: -5 }, 'config.metricsInterval'],
  [{ ...config, socketOptions: 'ws' }, 'config.socketOptions'],
  [{ ...config, logger: {} }, 'config.logger.debug'],
  [{ ...config, onMetrics: 'x' }, 'config.onMetrics'],
  [{ ...config, timout: 5 }, 'config.timout'],
];

for (const [cfg, field] of badConfigs) {
  test(`constructor rejects ${field} (${JSON.stringify(cfg)})`, () => {
    let thrown;
    try {
      new SandboxSDK(cfg);
    } catch (e) {
      thrown = e;
    }
    assertField(thrown, field);
  });
}

test('a valid config is accepted and connects lazily', () => {
  const s = new SandboxSDK({ ...config, timeout: 1000, maxRetries: 0, retryDelay: 0, enableLogging: false, logLevel: 'debug', enableMetrics: false, metricsInterval: 10, socketOptions: { transports: ['websocket'] } });
  assert.equal(s.isReady(), false);
  s.disconnect();
});

const S = 'sb-123';
const badCalls = [
  ['createSandbox', (s) => s.createSandbox(), 'options'],
  ['createSandbox', (s) => s.createSandbox({}), 'options.templateId'],
  ['createSandbox', (s) => s.createSandbox({ templateId: 7 }), 'options.templateId'],
  ['createSandbox', (s) => s.createSandbox({ templateId: 'python-3-11', name: 5 }), 'options.name'],
  ['createSandbox', (s) => s.createSandbox({ templateId: 'python-3-11', expiryTime: '1h' }), 'options.expiryTime'],
  ['createSandbox', (s) => s.createSandbox({ templateId: 'python-3-11', expiryTime: -1 }), 'options.expiryTime'],
  ['createSandbox', (s) => s.createSandbox({ templateId: 'python-3-11', initialEnvVars: { A: 1 } }), 'options.initialEnvVars.A'],
  ['createSandbox', (s) => s.createSandbox({ templateId: 'python-3-11', initialEnvVars: ['A=1'] }), 'options.initialEnvVars'],
  ['createSandbox', (s) => s.createSandbox({ templateId: 'python-3-11', template: 'x' }), 'options.template'],
  ['createSandbox', (s) => s.createSandbox({ templateId: 'python-3-11', network: 'internet' }), 'options.network'],
  ['createSandbox', (s) => s.createSandbox({ templateId: 'python-3-11', network: {} }), 'options.network.egress'],
  ['createSandbox', (s) => s.createSandbox({ templateId: 'python-3-11', network: { egress: 'open' } }), 'options.network.egress'],
  ['createSandbox', (s) => s.createSandbox({ templateId: 'python-3-11', network: { egress: 'internet', allow: ['a.org'] } }), 'options.network.allow'],
  ['createSandbox', (s) => s.createSandbox({ templateId: 'python-3-11', network: { egress: 'allowlist', allow: 'a.org' } }), 'options.network.allow'],
  ['createSandbox', (s) => s.createSandbox({ templateId: 'python-3-11', network: { egress: 'allowlist', allow: [7] } }), 'options.network.allow[0]'],
  ['createSandbox', (s) => s.createSandbox({ templateId: 'python-3-11', network: { egress: 'allowlist', allow: Array(65).fill('a.org') } }), 'options.network.allow'],
  ['createSandbox', (s) => s.createSandbox({ templateId: 'python-3-11', network: { egress: 'none', ports: [] } }), 'options.network.ports'],
  ['deleteSandbox', (s) => s.deleteSandbox(), 'sandboxId'],
  ['deleteSandbox', (s) => s.deleteSandbox(''), 'sandboxId'],
  ['getSandboxStatus', (s) => s.getSandboxStatus({ id: S }), 'sandboxId'],
  ['getTemplates', (s) => s.getTemplates('1'), 'page'],
  ['getTemplates', (s) => s.getTemplates(0), 'page'],
  ['getTemplates', (s) => s.getTemplates(1, 1000), 'pageSize'],
  ['getTemplate', (s) => s.getTemplate(), 'templateId'],
  ['createTemplate', (s) => s.createTemplate({ language: 'python' }), 'template.name'],
  ['createTemplate', (s) => s.createTemplate({ name: 'x' }), 'template.language'],
  ['createTemplate', (s) => s.createTemplate({ name: 'x', language: 'python', dependencies: 'pandas' }), 'template.dependencies'],
  ['createTemplate', (s) => s.createTemplate({ name: 'x', language: 'python', dependencies: ['a', 3] }), 'template.dependencies[1]'],
  ['createTemplate', (s) => s.createTemplate({ name: 'x', language: 'python', defaultEnvVars: { A: false } }), 'template.defaultEnvVars.A'],
  ['runCode', (s) => s.runCode(undefined, 'print(1)'), 'sandboxId'],
  ['runCode', (s) => s.runCode(S), 'code'],
  ['runCode', (s) => s.runCode(S, ''), 'code'],
  ['runCode', (s) => s.runCode(S, { code: 'x' }), 'code'],
  ['runCode', (s) => s.runCode(S, 'x', { timeoutMs: '30s' }), 'options.timeoutMs'],
  ['runCode', (s) => s.runCode(S, 'x', { timeoutMs: 0 }), 'options.timeoutMs'],
  ['runCode', (s) => s.runCode(S, 'x', { onStdout: 'log' }), 'options.onStdout'],
  ['runCode', (s) => s.runCode(S, 'x', { onError: {} }), 'options.onError'],
  ['runCode', (s) => s.runCode(S, 'x', { envs: { A: 1 } }), 'options.envs.A'],
  ['runCode', (s) => s.runCode(S, 'x', { context: 5 }), 'options.context'],
  ['runCode', (s) => s.runCode(S, 'x', { context: {} }), 'options.context.id'],
  ['runCode', (s) => s.runCode(S, 'x', { language: 3 }), 'options.language'],
  ['runCode', (s) => s.runCode(S, 'x', { cwd: '/tmp' }), 'options.cwd'],
  ['runCode', (s) => s.runCode(S, 'x', { timeout: 5 }), 'options.timeout'],
  ['runTerminal', (s) => s.runTerminal(S), 'command'],
  ['runTerminal', (s) => s.runTerminal(S, ['ls']), 'command'],
  ['runTerminal', (s) => s.runTerminal(S, 'ls', { cwd: 3 }), 'options.cwd'],
  ['runTerminal', (s) => s.runTerminal(S, 'ls', { language: 'python' }), 'options.language'],
  ['runCommand', (s) => s.runCommand(S, []), 'command'],
  ['runCommand', (s) => s.runCommand(S, ['ls', 1]), 'command[1]'],
  ['readFile', (s) => s.readFile(), 'options'],
  ['readFile', (s) => s.readFile({ sandboxId: S }), 'options.path'],
  ['readFile', (s) => s.readFile({ path: '/x' }), 'options.sandboxId'],
  ['readFile', (s) => s.readFile({ sandboxId: S, path: '/x', encoding: 'latin1' }), 'options.encoding'],
  ['writeFile', (s) => s.writeFile({ sandboxId: S, path: '/x' }), 'content'],
  ['writeFile', (s) => s.writeFile({ sandboxId: S, path: '/x' }, 42), 'content'],
  ['writeFile', (s) => s.writeFile({ sandboxId: S, path: '/x', createParents: 'yes' }, 'c'), 'options.createParents'],
  ['writeFile', (s) => s.writeFile({ sandboxId: S, path: 5 }, 'c'), 'options.path'],
  // Large content goes in chunks (no size limit), but must still be valid.
  ['writeFile', (s) => s.writeFile({ sandboxId: S, path: '/big', encoding: 'base64' }, '!'.repeat(16 * 1024 * 1024)), 'content'],
  ['uploadFile', (s) => s.uploadFile(S, '/x', 42), 'content'],
  ['uploadFile', (s) => s.uploadFile(S, '/x', new Uint8Array(1), { createParents: 'yes' }), 'options.createParents'],
  ['uploadFile', (s) => s.uploadFile(S, undefined, new Uint8Array(1)), 'path'],
  ['downloadFile', (s) => s.downloadFile(S), 'path'],
  ['getTemplateLogs', (s) => s.getTemplateLogs(), 'templateId'],
  ['getTemplateLogs', (s) => s.getTemplateLogs('tpl-x', { follow: 1 }), 'options.follow'],
  ['getTemplateLogs', (s) => s.getTemplateLogs('tpl-x', { onLine: 'x' }), 'options.onLine'],
  ['watchDirectory', (s) => s.watchDirectory(S, '/workspace'), 'onEvent'],
  ['watchDirectory', (s) => s.watchDirectory(S, '/workspace', () => {}, { recursive: 'yes' }), 'options.recursive'],
  ['watchDirectory', (s) => s.watchDirectory(S, '/workspace', () => {}, { onEnd: 1 }), 'options.onEnd'],
  ['watchDirectory', (s) => s.watchDirectory(undefined, '/workspace', () => {}), 'sandboxId'],
  ['deleteFile', (s) => s.deleteFile({ sandboxId: S, path: '/x', recursive: 1 }), 'options.recursive'],
  ['deleteFile', (s) => s.deleteFile({ sandboxId: S, paht: '/x' }), 'options.paht'],
  ['listFiles', (s) => s.listFiles(), 'sandboxId'],
  ['listFiles', (s) => s.listFiles(S, 5), 'dirPath'],
  ['createCodeContext', (s) => s.createCodeContext({ language: 'python' }), 'options.sandboxId'],
  ['createCodeContext', (s) => s.createCodeContext({ sandboxId: S, cwd: 1 }), 'options.cwd'],
  ['deleteCodeContext', (s) => s.deleteCodeContext(), 'contextId'],
  ['deleteCodeContext', (s) => s.deleteCodeContext(12), 'contextId'],
  ['listCodeContexts', (s) => s.listCodeContexts(null), 'sandboxId'],
  ['executeBatch', (s) => s.executeBatch(S), 'jobs'],
  ['executeBatch', (s) => s.executeBatch(S, []), 'jobs'],
  ['executeBatch', (s) => s.executeBatch(S, [{ code: 'x' }]), 'jobs[0].id'],
  ['executeBatch', (s) => s.executeBatch(S, [{ id: 'a', code: 'x' }, { id: 'a', code: 'y' }]), 'jobs[1].id'],
  ['executeBatch', (s) => s.executeBatch(S, [{ id: 'a' }]), 'jobs[0].code'],
  ['executeBatch', (s) => s.executeBatch(S, [{ id: 'a', code: 'x', timeout: '10s' }]), 'jobs[0].timeout'],
  ['executeBatch', (s) => s.executeBatch(S, [{ id: 'a', code: 'x', priority: 'high' }]), 'jobs[0].priority'],
  ['executeBatch', (s) => s.executeBatch(S, [{ id: 'a', code: 'x' }], { concurrency: 100 }), 'options.concurrency'],
  ['executeBatch', (s) => s.executeBatch(S, [{ id: 'a', code: 'x' }], { envs: {} }), 'options.envs'],
  ['waitForConnection', (s) => s.waitForConnection('10s'), 'timeoutMs'],
];

for (const [method, call, field] of badCalls) {
  test(`${method} rejects ${field}`, async () => {
    const s = sdk();
    try {
      await assert.rejects(Promise.resolve().then(() => call(s)), (err) => {
        assertField(err, field);
        return true;
      });
      assert.equal(s.getMetrics().totalRequests, 0, 'a rejected call is not counted as a request');
    } finally {
      s.disconnect();
    }
  });
}

test('nothing reached the server for any rejected call', async () => {
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(connections, 0);
});

test('a valid call does reach the server (the listener does count)', async () => {
  const s = sdk();
  try {
    await assert.rejects(s.listSandboxes(), (err) => err instanceof SandboxSDKError && err.code === 'unavailable');
  } finally {
    s.disconnect();
  }
  assert.ok(connections > 0, 'the listener saw the connection attempt');
});
