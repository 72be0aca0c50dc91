// The README's File Management and "Missing Files" examples, and file
// operations around them, against the real server.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { SandboxError } from '../../dist/index.js';
import { closeSandbox, openSandbox, serverTest } from '../helpers/env.mjs';

let sdk;
let sandbox;

before(async () => ({ sdk, sandbox } = await openSandbox('file tests')));
after(() => closeSandbox(sdk, sandbox));

serverTest('README File Management', async () => {
  // Write file
  const written = await sdk.writeFile(
    {
      sandboxId: sandbox.id,
      path: '/workspace/hello.py',
      createParents: true
    },
    `print("Hello from file!")`
  );
  assert.equal(written, '/workspace/hello.py');

  // Read file
  const content = await sdk.readFile({
    sandboxId: sandbox.id,
    path: '/workspace/hello.py'
  });
  assert.equal(content, 'print("Hello from file!")');

  // The file is really in the sandbox.
  assert.equal(await sdk.runTerminal(sandbox.id, 'python3 /workspace/hello.py'), 'Hello from file!');

  // List files
  const files = await sdk.listFiles(sandbox.id, '/workspace');
  assert.equal(files.path, '/workspace');
  const entry = files.entries.find((e) => e.name === 'hello.py');
  assert.ok(entry, JSON.stringify(files.entries));
  assert.equal(entry.path, '/workspace/hello.py');
  assert.equal(entry.type, 'file');
  assert.equal(entry.size, 25);
  assert.match(entry.mode, /^0[0-7]{3}$/);
  assert.ok(!Number.isNaN(Date.parse(entry.modifiedAt)));

  // Delete file
  await sdk.deleteFile({
    sandboxId: sandbox.id,
    path: '/workspace/hello.py'
  });

  await assert.rejects(sdk.readFile({ sandboxId: sandbox.id, path: '/workspace/hello.py' }), (err) => {
    assert.ok(err instanceof SandboxError, `got ${err?.name}`);
    assert.equal(err.code, 'not_found');
    return true;
  });
  assert.ok(!(await sdk.listFiles(sandbox.id, '/workspace')).entries.some((e) => e.name === 'hello.py'));
});

serverTest('README Troubleshooting: Missing Files', async () => {
  const sandboxId = sandbox.id;
  // Ensure parent directories exist
  await sdk.writeFile(
    {
      sandboxId,
      path: '/workspace/data/result.txt',
      createParents: true // creates all parent directories
    },
    'content'
  );
  assert.equal(await sdk.readFile({ sandboxId, path: '/workspace/data/result.txt' }), 'content');
  const listing = await sdk.listFiles(sandboxId, '/workspace/data');
  assert.deepEqual(listing.entries.map((e) => e.name), ['result.txt']);
});

serverTest('writing under a missing directory without createParents fails', async () => {
  await assert.rejects(
    sdk.writeFile({ sandboxId: sandbox.id, path: '/workspace/missing-dir/x.txt' }, 'x'),
    (err) => err instanceof SandboxError && ['not_found', 'conflict'].includes(err.code),
  );
});

serverTest('binary content round-trips as base64', async () => {
  const bytes = new Uint8Array(256).map((_, i) => i);
  const path = '/workspace/bytes.bin';
  assert.equal(await sdk.writeFile({ sandboxId: sandbox.id, path }, bytes), path);
  const b64 = await sdk.readFile({ sandboxId: sandbox.id, path, encoding: 'base64' });
  assert.deepEqual(new Uint8Array(Buffer.from(b64, 'base64')), bytes);
  // And a base64 string written with encoding 'base64'.
  await sdk.writeFile({ sandboxId: sandbox.id, path, encoding: 'base64' }, Buffer.from('héllo\n').toString('base64'));
  assert.equal(await sdk.readFile({ sandboxId: sandbox.id, path }), 'héllo\n');
  assert.equal(await sdk.runTerminal(sandbox.id, `wc -c < ${path}`), '7');
});

serverTest('listFiles defaults to /workspace; directories; recursive delete', async () => {
  await sdk.writeFile({ sandboxId: sandbox.id, path: '/workspace/tree/a/b.txt', createParents: true }, 'b');
  await sdk.writeFile({ sandboxId: sandbox.id, path: '/workspace/tree/c.txt' }, 'c');
  const root = await sdk.listFiles(sandbox.id);
  assert.equal(root.path, '/workspace');
  const tree = root.entries.find((e) => e.name === 'tree');
  assert.equal(tree?.type, 'dir');
  const inTree = await sdk.listFiles(sandbox.id, '/workspace/tree');
  assert.deepEqual(inTree.entries.map((e) => [e.name, e.type]), [['a', 'dir'], ['c.txt', 'file']]);
  // A non-empty directory needs recursive.
  await assert.rejects(sdk.deleteFile({ sandboxId: sandbox.id, path: '/workspace/tree' }), SandboxError);
  await sdk.deleteFile({ sandboxId: sandbox.id, path: '/workspace/tree', recursive: true });
  await assert.rejects(sdk.listFiles(sandbox.id, '/workspace/tree'), (err) => err instanceof SandboxError && err.code === 'not_found');
});

serverTest('files written by commands are readable, and the reverse', async () => {
  await sdk.runTerminal(sandbox.id, 'printf "from shell\\n" > /workspace/shell.txt');
  assert.equal(await sdk.readFile({ sandboxId: sandbox.id, path: '/workspace/shell.txt' }), 'from shell\n');
});

serverTest('server-side path errors', async () => {
  await assert.rejects(sdk.readFile({ sandboxId: sandbox.id, path: 'relative.txt' }), (err) => {
    assert.ok(err instanceof SandboxError);
    assert.equal(err.code, 'invalid_argument');
    return true;
  });
  await assert.rejects(sdk.readFile({ sandboxId: sandbox.id, path: '/workspace' }), (err) => {
    assert.ok(err instanceof SandboxError);
    assert.equal(err.code, 'conflict');
    return true;
  });
  await assert.rejects(sdk.readFile({ sandboxId: 'sb-doesnotexist', path: '/workspace/x' }), (err) => err instanceof SandboxError && err.code === 'not_found');
});

serverTest('a few MiB round-trip over Socket.IO', async () => {
  const bytes = new Uint8Array(3 * 1024 * 1024);
  for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 2654435761) >>> 24;
  const path = '/workspace/big.bin';
  await sdk.writeFile({ sandboxId: sandbox.id, path }, bytes);
  const back = Buffer.from(await sdk.readFile({ sandboxId: sandbox.id, path, encoding: 'base64' }), 'base64');
  assert.equal(back.length, bytes.length);
  assert.ok(back.equals(Buffer.from(bytes)));
  const entry = (await sdk.listFiles(sandbox.id)).entries.find((e) => e.name === 'big.bin');
  assert.equal(entry.size, bytes.length);
});
