// The package as a user gets it: `npm pack`, install the tarball in a
// scratch project, use it from ESM and from CommonJS against the real
// server (instanceof across the two builds), and type-check a strict
// consumer and the README's examples against the installed types.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile, copyFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { server } from '../helpers/env.mjs';
import { pkgDir } from '../helpers/server.mjs';

const exec = promisify(execFile);
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

let dir;
let tarball;
let project;

before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'sdbx-ts-pack-'));
  // dist/ is fresh: `npm test` builds before it runs the tests.
  const { stdout } = await exec(npm, ['pack', '--json', '--ignore-scripts', '--pack-destination', dir], { cwd: pkgDir });
  const [info] = JSON.parse(stdout);
  tarball = path.join(dir, info.filename);
  project = path.join(dir, 'project');
  await exec('mkdir', ['-p', project]);
  await writeFile(path.join(project, 'package.json'), JSON.stringify({ name: 'scratch', private: true, type: 'module' }, null, 2));
  await exec(npm, ['install', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error', tarball], {
    cwd: project,
    timeout: 300_000,
  });
});

after(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

test('the tarball holds dist, README and package.json only', async () => {
  const { stdout } = await exec('tar', ['-tzf', tarball]);
  const files = stdout.trim().split('\n').sort();
  assert.deepEqual(files, [
    'package/README.md',
    'package/dist/index.cjs',
    'package/dist/index.d.cts',
    'package/dist/index.d.ts',
    'package/dist/index.js',
    'package/package.json',
  ]);
  const installed = path.join(project, 'node_modules/sdb-x-sdk');
  assert.equal(await readFile(path.join(installed, 'README.md'), 'utf8'), await readFile(path.join(pkgDir, 'README.md'), 'utf8'));
  const pkg = JSON.parse(await readFile(path.join(installed, 'package.json'), 'utf8'));
  assert.equal(pkg.name, 'sdb-x-sdk');
  assert.equal(pkg.version, '1.0.0');
  assert.equal(pkg.engines.node, '>=18');
  assert.match(pkg.dependencies['socket.io-client'], /^\^4\./);
});

const esmScript = `
import SandboxSDK, { SandboxSDK as Named, SandboxError, SandboxSDKError, TimeoutError } from 'sdb-x-sdk';
import { createRequire } from 'node:module';
const require = createRequire(import.meta.url);
const cjs = require('sdb-x-sdk');

const sdk = new SandboxSDK({ apiKey: process.env.TEST_KEY, serverUrl: process.env.TEST_URL });
await sdk.waitForConnection();
const { sandbox } = await sdk.createSandbox({ templateId: 'python-3-11' });
const out = await sdk.runTerminal(sandbox.id, 'echo from-esm');
await sdk.deleteSandbox(sandbox.id);

const other = new cjs.SandboxSDK({ apiKey: process.env.TEST_KEY, serverUrl: process.env.TEST_URL });
let err;
try { await other.getSandboxStatus('sb-nope'); } catch (e) { err = e; }
other.disconnect();
sdk.disconnect();
console.log(JSON.stringify({
  out,
  named: Named === SandboxSDK,
  separateCopies: cjs.SandboxError !== SandboxError,
  cjsErrorIsEsmSandboxError: err instanceof SandboxError,
  cjsErrorIsEsmBase: err instanceof SandboxSDKError,
  cjsErrorIsError: err instanceof Error,
  notTimeout: !(err instanceof TimeoutError),
  code: err.code,
}));
`;

const cjsScript = `
const { SandboxSDK, SandboxError, SandboxSDKError, RateLimitError } = require('sdb-x-sdk');
const Default = require('sdb-x-sdk').default;
(async () => {
  const esm = await import('sdb-x-sdk');
  const sdk = new Default({ apiKey: process.env.TEST_KEY, serverUrl: process.env.TEST_URL });
  const templates = await sdk.getTemplates(1, 10);
  const viaEsm = new esm.default({ apiKey: process.env.TEST_KEY, serverUrl: process.env.TEST_URL });
  let err;
  try { await viaEsm.getTemplate('no-such-template'); } catch (e) { err = e; }
  viaEsm.disconnect();
  sdk.disconnect();
  console.log(JSON.stringify({
    defaultIsNamed: Default === SandboxSDK,
    templates: templates.templates.length > 0,
    esmErrorIsCjsSandboxError: err instanceof SandboxError,
    esmErrorIsCjsBase: err instanceof SandboxSDKError,
    notRateLimit: !(err instanceof RateLimitError),
    code: err.code,
  }));
})().catch((e) => { console.error(e); process.exit(1); });
`;

async function runNode(file) {
  const { url, apiKey } = server();
  await writeFile(path.join(project, path.basename(file)), file.endsWith('.cjs') ? cjsScript : esmScript);
  // The script must exit by itself: disconnect() leaves nothing running.
  const { stdout } = await exec(process.execPath, [path.basename(file)], {
    cwd: project,
    env: { ...process.env, TEST_KEY: apiKey, TEST_URL: url },
    timeout: 120_000,
  });
  return JSON.parse(stdout.trim().split('\n').at(-1));
}

test('ESM use of the installed package, with the CJS build in the same process', async () => {
  assert.deepEqual(await runNode('run.mjs'), {
    out: 'from-esm',
    named: true,
    separateCopies: true,
    cjsErrorIsEsmSandboxError: true,
    cjsErrorIsEsmBase: true,
    cjsErrorIsError: true,
    notTimeout: true,
    code: 'not_found',
  });
});

test('CommonJS use of the installed package, with the ESM build in the same process', async () => {
  assert.deepEqual(await runNode('run.cjs'), {
    defaultIsNamed: true,
    templates: true,
    esmErrorIsCjsSandboxError: true,
    esmErrorIsCjsBase: true,
    notRateLimit: true,
    code: 'not_found',
  });
});

async function tsc(tsconfig) {
  await writeFile(path.join(project, 'tsconfig.json'), JSON.stringify(tsconfig, null, 2));
  const bin = path.join(pkgDir, 'node_modules/.bin/tsc');
  try {
    await exec(bin, ['--noEmit', '-p', project], { cwd: project, timeout: 120_000 });
  } catch (e) {
    assert.fail(`tsc failed:\n${e.stdout}\n${e.stderr}`);
  }
}

const compilerOptions = {
  target: 'ES2022',
  module: 'NodeNext',
  moduleResolution: 'NodeNext',
  strict: true,
  noEmit: true,
  typeRoots: [path.join(pkgDir, 'node_modules/@types')],
  types: ['node'],
};

test('types: a strict consumer, from ESM and from CommonJS', async () => {
  for (const f of ['consumer.ts', 'consumer.cts']) {
    await copyFile(path.join(pkgDir, 'test/types', f), path.join(project, f));
  }
  await tsc({ compilerOptions, files: ['consumer.ts', 'consumer.cts'] });
});

test('types: the README examples type-check as written', async () => {
  await copyFile(path.join(pkgDir, 'test/types/readme-examples.ts'), path.join(project, 'readme-examples.ts'));
  await tsc({ compilerOptions: { ...compilerOptions, strictNullChecks: false }, files: ['readme-examples.ts'] });
});
