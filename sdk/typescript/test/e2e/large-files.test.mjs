// Large files over Socket.IO: the chunked upload and download (uploadFile,
// downloadFile, and writeFile/readFile above 8 MiB), aborted uploads, and
// template build logs over template:logs.
import { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomFillSync } from 'node:crypto';
import { io } from 'socket.io-client';
import { closeSandbox, openSandbox, server, serverTest, sleep } from '../helpers/env.mjs';

let sdk;
let sandbox;

before(async () => ({ sdk, sandbox } = await openSandbox('large file tests', { timeout: 120_000 })));
after(() => closeSandbox(sdk, sandbox));

/** rawSocket connects the official client directly, for protocol-level checks. */
async function rawSocket() {
  const { url, apiKey } = server();
  const socket = io(url, { auth: { apiKey }, transports: ['websocket'], reconnection: false, forceNew: true });
  await new Promise((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('connect_error', reject);
  });
  const call = async (event, payload) => socket.timeout(60_000).emitWithAck(event, payload);
  return { socket, call };
}

/** leftovers lists temporary write files under /workspace. */
async function leftovers() {
  const out = await sdk.runTerminal(sandbox.id, 'find /workspace -name ".sdbx-*" | wc -l');
  return Number(out.trim());
}

serverTest('uploadFile / downloadFile: 256 MiB round trip with the same sha256', async () => {
  const total = 256 * 1024 * 1024;
  const part = 3 * 1024 * 1024 + 17; // not a multiple of the chunk size
  const sent = createHash('sha256');
  async function* content() {
    for (let left = total; left > 0; left -= part) {
      const b = randomFillSync(Buffer.allocUnsafe(Math.min(part, left)));
      sent.update(b);
      yield b;
    }
  }
  const entry = await sdk.uploadFile(sandbox.id, '/workspace/big/blob.bin', content(), { createParents: true });
  assert.equal(entry.size, total);
  assert.equal(entry.path, '/workspace/big/blob.bin');
  const want = sent.digest('hex');
  const inside = await sdk.runTerminal(sandbox.id, 'sha256sum /workspace/big/blob.bin');
  assert.equal(inside.split(' ')[0], want);

  const { size, stream } = await sdk.downloadFile(sandbox.id, '/workspace/big/blob.bin');
  assert.equal(size, total);
  const got = createHash('sha256');
  let n = 0;
  for await (const b of stream) {
    got.update(b);
    n += b.length;
  }
  assert.equal(n, total);
  assert.equal(got.digest('hex'), want);
  await sdk.deleteFile({ sandboxId: sandbox.id, path: '/workspace/big', recursive: true });
});

serverTest('writeFile / readFile above the one-message limit switch to chunks', async () => {
  const bytes = randomFillSync(Buffer.allocUnsafe(70 * 1024 * 1024)); // over file:read's 64 MiB too
  assert.equal(await sdk.writeFile({ sandboxId: sandbox.id, path: '/workspace/70m.bin' }, bytes), '/workspace/70m.bin');
  const b64 = await sdk.readFile({ sandboxId: sandbox.id, path: '/workspace/70m.bin', encoding: 'base64' });
  assert.ok(Buffer.from(b64, 'base64').equals(bytes));
  const text = 'ü'.repeat(6 * 1024 * 1024); // 12 MiB of UTF-8
  await sdk.writeFile({ sandboxId: sandbox.id, path: '/workspace/text.txt' }, text);
  assert.equal(await sdk.readFile({ sandboxId: sandbox.id, path: '/workspace/text.txt' }), text);
  await sdk.runTerminal(sandbox.id, 'rm /workspace/70m.bin /workspace/text.txt');
});

serverTest('an aborted or broken upload leaves no file and no temporary file', async () => {
  await sdk.writeFile({ sandboxId: sandbox.id, path: '/workspace/keep.txt' }, 'old content');
  const { socket, call } = await rawSocket();
  try {
    // Explicit abort.
    let ack = await call('file:upload:begin', { sandboxId: sandbox.id, path: '/workspace/aborted.bin' });
    assert.ok(ack.ok, JSON.stringify(ack));
    const { uploadId } = ack.data;
    ack = await call('file:upload:chunk', { uploadId, seq: 0, data: Buffer.alloc(1 << 20, 1) });
    assert.ok(ack.ok, JSON.stringify(ack));
    assert.equal(ack.data.received, 1 << 20);
    ack = await call('file:upload:abort', { uploadId });
    assert.ok(ack.ok, JSON.stringify(ack));
    // Fewer bytes than announced: refused at the end, the old file stays.
    ack = await call('file:upload:begin', { sandboxId: sandbox.id, path: '/workspace/keep.txt', size: 100 });
    const short = ack.data.uploadId;
    await call('file:upload:chunk', { uploadId: short, seq: 0, data: Buffer.from('new') });
    ack = await call('file:upload:end', { uploadId: short });
    assert.equal(ack.ok, false);
    assert.equal(ack.error.code, 'invalid_argument');
    assert.match(ack.error.message, /3 bytes received of the announced 100/);
    // Out of order beyond the window, and text instead of binary.
    ack = await call('file:upload:begin', { sandboxId: sandbox.id, path: '/workspace/x.bin' });
    const bad = ack.data.uploadId;
    ack = await call('file:upload:chunk', { uploadId: bad, seq: 99, data: Buffer.from('x') });
    assert.equal(ack.error.code, 'invalid_argument');
    assert.match(ack.error.message, /seq/);
    ack = await call('file:upload:chunk', { uploadId: bad, seq: 0, data: 'text' });
    assert.equal(ack.error.code, 'invalid_argument');
    assert.match(ack.error.message, /binary attachment/);
    // A socket that goes away in the middle of an upload.
    ack = await call('file:upload:begin', { sandboxId: sandbox.id, path: '/workspace/dropped.bin' });
    await call('file:upload:chunk', { uploadId: ack.data.uploadId, seq: 0, data: Buffer.alloc(1 << 20, 2) });
  } finally {
    socket.close();
  }
  // The server notices the disconnect and the agent drops the temporary file.
  for (let i = 0; i < 50 && (await leftovers()) > 0; i++) await sleep(100);
  assert.equal(await leftovers(), 0);
  const ls = await sdk.runTerminal(sandbox.id, 'ls -A /workspace');
  assert.doesNotMatch(ls, /aborted\.bin|dropped\.bin|x\.bin/);
  assert.equal(await sdk.readFile({ sandboxId: sandbox.id, path: '/workspace/keep.txt' }), 'old content');
});

serverTest('download errors and template:logs over Socket.IO', async () => {
  const { socket, call } = await rawSocket();
  try {
    let ack = await call('file:download:begin', { sandboxId: sandbox.id, path: '/workspace/missing.bin' });
    assert.equal(ack.error.code, 'not_found');
    ack = await call('file:download:chunk', { downloadId: 'down_nope' });
    assert.equal(ack.error.code, 'not_found');

    const marker = `ts-build-marker-${Math.random().toString(36).slice(2)}`;
    ack = await call('template:create', { name: `logs ${marker}`, language: 'python', installCommand: `echo ${marker}` });
    assert.ok(ack.ok, JSON.stringify(ack));
    const tpl = ack.data;
    try {
      const lines = [];
      socket.on('template:log', (ev) => {
        if (ev.streamId === 'tl-1') lines.push(ev.line);
      });
      ack = await socket.timeout(300_000).emitWithAck('template:logs', { templateId: tpl.id, follow: true, streamId: 'tl-1' });
      assert.ok(ack.ok, JSON.stringify(ack));
      assert.equal(ack.data.status, 'ready', JSON.stringify(ack.data));
      assert.ok(lines.includes(marker), lines.join('\n'));
      // Afterwards, without a stream: the lines come in the ack.
      ack = await call('template:logs', { templateId: tpl.id });
      assert.ok(ack.data.lines.includes(marker));
      // And through the SDK.
      const sdkLines = [];
      const end = await sdk.getTemplateLogs(tpl.id, { follow: true, onLine: (l) => sdkLines.push(l) });
      assert.equal(end.status, 'ready');
      assert.equal(end.template.id, tpl.id);
      assert.deepEqual(sdkLines, lines);
    } finally {
      await call('template:delete', { templateId: tpl.id });
    }
  } finally {
    socket.close();
  }
});
