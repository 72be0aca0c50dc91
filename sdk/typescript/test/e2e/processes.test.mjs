// Background processes and terminals (startProcess, runTerminal with
// background, onOutput, getProcessOutput, sendInput, killProcess,
// createTerminal, attachTerminal) against the real server.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { SandboxError, ValidationError, SandboxSDKError } from '../../dist/index.js';
import { closeSandbox, newSDK, openSandbox, sleep } from '../helpers/env.mjs';

let sdk;
let sandbox;

before(async () => ({ sdk, sandbox } = await openSandbox('process tests')));
after(() => closeSandbox(sdk, sandbox));

/** until resolves once check() returns a truthy value (polling). */
async function until(check, what) {
  for (let i = 0; i < 1500; i++) {
    const v = await check();
    if (v) return v;
    await sleep(20);
  }
  throw new Error(`never: ${what}`);
}

test('runTerminal with background resolves at once; onOutput, sendInput, exit code', async () => {
  const p = await sdk.runTerminal(
    sandbox.id,
    'for i in 1 2 3; do echo line$i; done; echo warn >&2; read x; echo got=$x; exit 4',
    { background: true },
  );
  assert.match(p.id, /^proc_/);
  assert.ok(p.pid > 0);
  assert.equal(p.running, true);

  const chunks = [];
  let exit;
  const exited = new Promise((resolve) => {
    exit = resolve;
  });
  const sub = await sdk.onOutput(sandbox.id, p.id, (c) => chunks.push(c), { onExit: exit });
  await until(() => chunks.map((c) => c.data).join('').includes('line3'), 'line3 streamed');
  await sdk.sendInput(sandbox.id, p.id, 'hi\n');
  const e = await exited;
  assert.equal(e.exitCode, 4);
  const text = chunks.map((c) => c.data).join('');
  // stdout and stderr are read apart: "warn" may land between the lines.
  const stdout = chunks.filter((c) => c.stream === 'stdout').map((c) => c.data).join('');
  assert.match(stdout, /line1\nline2\nline3\n/);
  assert.match(text, /got=hi/);
  assert.ok(chunks.some((c) => c.stream === 'stderr' && c.data.includes('warn')));
  // Offsets are contiguous.
  for (let i = 1; i < chunks.length; i++) assert.equal(chunks[i].offset, chunks[i - 1].end);
  assert.equal(sub.offset, e.end);
  await sub.stop();

  const out = await sdk.getProcessOutput(sandbox.id, p.id);
  assert.equal(out.exited, true);
  assert.equal(out.exitCode, 4);
  assert.equal(out.output, text);
  assert.equal(out.stderr, 'warn\n');
  // From an offset: only what follows.
  const tail = await sdk.getProcessOutput(sandbox.id, p.id, { offset: chunks.at(-1).offset });
  assert.equal(tail.output, chunks.at(-1).data);
});

test('a background process survives its client; a new client reads its output and re-attaches from an offset', async () => {
  const a = newSDK();
  await a.waitForConnection();
  const p = await a.startProcess(sandbox.id, ['sh', '-c', 'echo before; sleep 0.5; echo after; sleep 100']);
  a.disconnect();

  const b = newSDK();
  await b.waitForConnection();
  const out = await until(async () => {
    const o = await b.getProcessOutput(sandbox.id, p.id);
    return o.output.includes('after') ? o : undefined;
  }, 'output after the first client left');
  assert.equal(out.output, 'before\nafter\n');
  assert.equal(out.exited, false);
  const list = await b.listProcesses(sandbox.id);
  assert.ok(list.some((x) => x.id === p.id && x.running));

  // Re-attach from the offset of "after": the earlier output is not repeated.
  const seen = [];
  const sub = await b.onOutput(sandbox.id, p.id, (c) => seen.push(c), { offset: 'before\n'.length });
  await until(() => seen.length > 0, 'buffered output delivered');
  assert.equal(seen.map((c) => c.data).join(''), 'after\n');
  await sub.stop();

  const killed = await b.killProcess(sandbox.id, p.id);
  assert.equal(killed.id, p.id);
  const done = await until(async () => {
    const o = await b.getProcessOutput(sandbox.id, p.id);
    return o.exited ? o : undefined;
  }, 'killed process exited');
  assert.equal(done.exitCode, 137);
});

test('bad input is refused before sending, or by the server with a clear error', async () => {
  await assert.rejects(sdk.runTerminal(sandbox.id, 'true', { background: true, timeoutMs: 5 }), (e) => e instanceof ValidationError && e.field === 'options.timeoutMs');
  await assert.rejects(sdk.runTerminal(sandbox.id, 'true', { background: 'yes' }), (e) => e instanceof ValidationError && e.field === 'options.background');
  await assert.rejects(sdk.startProcess(sandbox.id, []), (e) => e instanceof ValidationError && e.field === 'command');
  await assert.rejects(sdk.createTerminal(sandbox.id, { cols: 0, rows: 10 }), (e) => e instanceof ValidationError && e.field === 'options.cols');
  await assert.rejects(sdk.createTerminal(sandbox.id, { cols: 80 }), (e) => e instanceof ValidationError && e.field === 'options.rows');
  await assert.rejects(sdk.createTerminal(sandbox.id, { cols: 80, rows: 1001 }), (e) => e instanceof ValidationError && e.field === 'options.rows');
  await assert.rejects(sdk.sendInput(sandbox.id, 'proc_x', 42), (e) => e instanceof ValidationError && e.field === 'data');
  await assert.rejects(sdk.getProcessOutput(sandbox.id, 'proc_nope'), (e) => e instanceof SandboxError && e.code === 'not_found');
  await assert.rejects(sdk.attachTerminal(sandbox.id, 'pty_nope'), (e) => e instanceof SandboxSDKError && e.code === 'not_found');
  const p = await sdk.startProcess(sandbox.id, 'sleep 100');
  await assert.rejects(sdk.killProcess(sandbox.id, p.id, 'SIGNOPE'), (e) => e.code === 'invalid_argument' && /SIGNOPE/.test(e.message));
  await sdk.killProcess(sandbox.id, p.id);
});

test('createTerminal: a shell on a pseudo-terminal, resize, exit code', async () => {
  let data = '';
  let exit;
  const exited = new Promise((resolve) => {
    exit = resolve;
  });
  const term = await sdk.createTerminal(sandbox.id, { cols: 100, rows: 30, onData: (d) => (data += d), onExit: exit });
  assert.match(term.id, /^pty_/);
  assert.ok(term.pid > 0);
  await term.write('echo $((6*7))\n');
  await until(() => /[\r\n]42\r?\n/.test(data), '42');
  await term.resize(120, 40);
  await term.write('stty size\n');
  await until(() => /40 120/.test(data), 'stty size after resize');
  await assert.rejects(term.resize(0, 10), (e) => e instanceof ValidationError && e.field === 'cols');
  await term.write('exit 5\n');
  const e = await exited;
  assert.equal(e.exitCode, 5);
  await assert.rejects(term.write('x'), (err) => err.code === 'conflict');
});

test('attachTerminal resumes from an offset after detach', async () => {
  let first = '';
  const term = await sdk.createTerminal(sandbox.id, { command: ['sh', '-c', 'read a; echo got-$a; read b; echo got-$b; sleep 100'], onData: (d) => (first += d) });
  await term.write('one\n');
  await until(() => first.includes('got-one'), 'got-one');
  const off = term.offset;
  await term.detach();
  await term.write('two\n');
  let second = '';
  const again = await sdk.attachTerminal(sandbox.id, term.id, { offset: off, onData: (d) => (second += d) });
  await until(() => second.includes('got-two'), 'got-two after re-attach');
  assert.ok(!second.includes('got-one'), `re-attach repeated output: ${JSON.stringify(second)}`);
  assert.ok(!first.includes('got-two'), 'detached terminal still delivered output');
  await again.kill();
});
