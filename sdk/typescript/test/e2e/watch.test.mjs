// watchDirectory against the real server: events in order, recursive
// watches, errors, and the end of a watch when its sandbox is deleted.
import { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { SandboxError } from '../../dist/index.js';
import { closeSandbox, deleteQuietly, openSandbox, serverTest, sleep } from '../helpers/env.mjs';

let sdk;
let sandbox;

before(async () => ({ sdk, sandbox } = await openSandbox('watch tests')));
after(() => closeSandbox(sdk, sandbox));

/** collector gathers events as "type path" strings and waits for one. */
function collector() {
  const seen = [];
  const waiters = [];
  return {
    seen,
    onEvent(ev) {
      assert.equal(typeof ev.timestamp, 'number');
      let s = `${ev.type} ${ev.path}`;
      if (ev.oldPath) s += ` from ${ev.oldPath}`;
      if (ev.isDir) s += '/';
      if (seen.length > 0 && seen[seen.length - 1] === s && ev.type === 'modified') return;
      seen.push(s);
      for (const w of [...waiters]) w();
    },
    async until(s, ms = 20_000) {
      const deadline = Date.now() + ms;
      while (!seen.includes(s)) {
        if (Date.now() > deadline) throw new Error(`no "${s}" in ${JSON.stringify(seen)}`);
        await new Promise((r) => {
          waiters.push(r);
          setTimeout(r, 100);
        });
        waiters.length = 0;
      }
    },
  };
}

serverTest('watchDirectory: create, modify, rename, delete in order; recursive; stop', async () => {
  await sdk.runTerminal(sandbox.id, 'mkdir -p /workspace/tw/sub');
  const c = collector();
  const w = await sdk.watchDirectory(sandbox.id, '/workspace/tw', c.onEvent, { recursive: true });
  assert.match(w.watchId, /./);
  await sdk.runTerminal(sandbox.id, 'cd /workspace/tw && touch a && echo x >> a && mv a b && rm b');
  await c.until('deleted /workspace/tw/b');
  assert.deepEqual(c.seen.slice(0, 4), [
    'created /workspace/tw/a',
    'modified /workspace/tw/a',
    'renamed /workspace/tw/b from /workspace/tw/a',
    'deleted /workspace/tw/b',
  ]);
  await sdk.runTerminal(sandbox.id, 'mkdir -p /workspace/tw/new/deep && echo 1 > /workspace/tw/new/deep/f && echo 2 > /workspace/tw/sub/g');
  await c.until('created /workspace/tw/new/deep/f');
  await c.until('created /workspace/tw/sub/g');
  // A write through the SDK is one change, without temporary files.
  await sdk.writeFile({ sandboxId: sandbox.id, path: '/workspace/tw/sdk.txt' }, 'hi');
  await c.until('created /workspace/tw/sdk.txt');
  assert.ok(!c.seen.some((s) => s.includes('.sdbx-')), JSON.stringify(c.seen));

  await w.stop();
  const n = c.seen.length;
  await sdk.runTerminal(sandbox.id, 'touch /workspace/tw/after-stop');
  await sleep(300);
  assert.equal(c.seen.length, n, 'no event after stop()');
  assert.equal(await w.ended, undefined);
});

serverTest('watchDirectory errors: missing directory, a file, bad arguments', async () => {
  await assert.rejects(sdk.watchDirectory(sandbox.id, '/workspace/nope', () => {}), (e) => {
    assert.ok(e instanceof SandboxError, String(e));
    assert.equal(e.code, 'not_found');
    return true;
  });
  await sdk.writeFile({ sandboxId: sandbox.id, path: '/workspace/plain.txt' }, 'x');
  await assert.rejects(sdk.watchDirectory(sandbox.id, '/workspace/plain.txt', () => {}), (e) => {
    assert.equal(e.code, 'conflict');
    assert.match(e.message, /not a directory/);
    return true;
  });
  await assert.rejects(sdk.watchDirectory(sandbox.id, '/workspace', 'nope'), /onEvent must be a function/);
});

serverTest('a watch ends when its sandbox is deleted', async () => {
  const { sandbox: other } = await sdk.createSandbox({ templateId: 'python-3-11', name: 'watch end' });
  let ended;
  try {
    const w = await sdk.watchDirectory(other.id, '/workspace', () => {}, { onEnd: (e) => (ended = e) });
    await sdk.deleteSandbox(other.id);
    const err = await w.ended;
    assert.ok(err, 'the watch ended with an error');
    assert.equal(err.code, 'conflict');
    assert.match(err.message, /deleted/);
    assert.equal(ended, err);
  } finally {
    await deleteQuietly(sdk, other.id);
  }
});
