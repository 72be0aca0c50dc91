// The README's Graceful Shutdown example in a child process, with a server
// of this test's own (the example deletes every sandbox of the key): on
// SIGTERM or SIGINT the child deletes its sandboxes, disconnects, prints
// "SDK shutdown complete" and exits by itself — which it can only do if
// disconnect() leaves nothing running.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import SandboxSDK from '../../dist/index.js';
import { sdbxBin } from '../helpers/env.mjs';
import { pkgDir, startServer } from '../helpers/server.mjs';

let srv;
let dir;

before(async () => {
  srv = await startServer({ bin: sdbxBin() });
  dir = await mkdtemp(path.join(os.tmpdir(), 'sdbx-ts-shutdown-'));
});

after(async () => {
  if (srv) await srv.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const dist = pathToFileURL(path.join(pkgDir, 'dist/index.js')).href;

const script = `
import SandboxSDK from ${JSON.stringify(dist)};

const sdk = new SandboxSDK({ apiKey: process.env.TEST_KEY, serverUrl: process.env.TEST_URL });
await sdk.waitForConnection();
const { sandbox: a } = await sdk.createSandbox({ templateId: 'python-3-11' });
const { sandbox: b } = await sdk.createSandbox({ templateId: 'python-3-11' });

async function shutdown() {
  const sandboxes = await sdk.listSandboxes();
  
  // Delete all sandboxes
  await Promise.all(
    sandboxes.map(sb => sdk.deleteSandbox(sb.id))
  );
  
  // Disconnect
  sdk.disconnect();
  
  console.log('SDK shutdown complete');
}

// Cleanup on exit
process.on('SIGINT', shutdown);
process.on('SIGTERM', shutdown);

console.log('READY ' + a.id + ' ' + b.id);
`;

for (const signal of ['SIGTERM', 'SIGINT']) {
  test(`README Graceful Shutdown on ${signal}`, async () => {
    const file = path.join(dir, `shutdown-${signal}.mjs`);
    await writeFile(file, script);
    const child = spawn(process.execPath, [file], {
      env: { ...process.env, TEST_KEY: srv.apiKey, TEST_URL: srv.url },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    const exited = new Promise((resolve) => child.on('exit', (code, sig) => resolve({ code, sig })));
    const killer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    try {
      while (!out.includes('READY')) {
        const done = await Promise.race([exited.then(() => true), new Promise((r) => setTimeout(() => r(false), 50))]);
        if (done) assert.fail(`the child exited early:\n${out}\n${err}`);
      }
      const ids = out.trim().split('\n')[0].split(' ').slice(1);
      const checker = new SandboxSDK({ apiKey: srv.apiKey, serverUrl: srv.url });
      try {
        const before = (await checker.listSandboxes()).map((s) => s.id);
        for (const id of ids) assert.ok(before.includes(id));

        child.kill(signal);
        const { code, sig } = await exited;
        assert.equal(sig, null, `the child was killed (it did not exit by itself):\n${out}\n${err}`);
        assert.equal(code, 0, err);
        assert.match(out, /SDK shutdown complete/);
        assert.deepEqual(await checker.listSandboxes(), [], 'every sandbox was deleted');
      } finally {
        checker.disconnect();
      }
    } finally {
      clearTimeout(killer);
      child.kill('SIGKILL');
    }
  });
}
