// runTerminal / runCommand against the real server, and the README's
// Terminal Commands example.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { SandboxError, TimeoutError } from '../../dist/index.js';
import { captureConsole, closeSandbox, openSandbox } from '../helpers/env.mjs';

let sdk;
let sandbox;

before(async () => ({ sdk, sandbox } = await openSandbox('terminal tests')));
after(() => closeSandbox(sdk, sandbox));

test('README Terminal Commands', async () => {
  const streamed = [];
  let output;
  const printed = await captureConsole(async () => {
    output = await sdk.runTerminal(
      sandbox.id,
      'pip install numpy pandas matplotlib',
      {
        timeoutMs: 60000,
        onStdout: (output) => {
          streamed.push(output);
          console.log(output.line);
        }
      }
    );

    console.log('Installation output:', output);
  });
  // Whatever pip does here (the sandbox has no network, and Debian's pip
  // refuses to touch the system environment), the call resolves with the
  // command's stdout: the streamed lines, joined.
  assert.equal(typeof output, 'string');
  assert.equal(output, streamed.map((o) => o.line).join('\n'));
  for (const o of streamed) {
    assert.equal(typeof o.line, 'string');
    assert.equal(typeof o.timestamp, 'number');
  }
  assert.deepEqual(printed.at(-1).args, ['Installation output:', output]);
});

test('stdout and stderr stream in order, with timestamps', async () => {
  const events = [];
  const t0 = Date.now();
  const out = await sdk.runTerminal(sandbox.id, 'echo one; echo two >&2; echo three; printf "no newline"', {
    onStdout: (o) => events.push(['out', o.line, o.timestamp]),
    onStderr: (o) => events.push(['err', o.line, o.timestamp]),
  });
  assert.equal(out, 'one\nthree\nno newline');
  assert.deepEqual(
    events.filter((e) => e[0] === 'out').map((e) => e[1]),
    ['one', 'three', 'no newline'],
  );
  assert.deepEqual(events.filter((e) => e[0] === 'err').map((e) => e[1]), ['two']);
  for (const [, , ts] of events) {
    assert.ok(ts >= t0 - 60_000 && ts <= Date.now() + 60_000, `timestamp ${ts} is Unix ms`);
  }
});

test('runCommand gives the exit code, stderr and duration; a non-zero exit is not an error', async () => {
  const res = await sdk.runCommand(sandbox.id, 'echo out; echo err >&2; exit 3');
  assert.equal(res.exitCode, 3);
  assert.deepEqual(res.stdout, ['out']);
  assert.deepEqual(res.stderr, ['err']);
  assert.equal(typeof res.durationMs, 'number');
  assert.equal(res.truncated, false);
  assert.equal(await sdk.runTerminal(sandbox.id, 'echo still; false'), 'still');
});

test('runCommand with an argv runs it without a shell', async () => {
  const res = await sdk.runCommand(sandbox.id, ['python3', '-c', 'import sys; print(sys.argv[1])', '$HOME; echo no-shell']);
  assert.equal(res.exitCode, 0);
  assert.deepEqual(res.stdout, ['$HOME; echo no-shell']);
});

test('envs and cwd of a command', async () => {
  const out = await sdk.runTerminal(sandbox.id, 'echo "$GREETING"; pwd', { envs: { GREETING: 'hi there' }, cwd: '/tmp' });
  assert.equal(out, 'hi there\n/tmp');
  assert.equal(await sdk.runTerminal(sandbox.id, 'pwd'), '/workspace', 'default cwd is the template\'s');
});

test('a command past its timeoutMs fails with TimeoutError, and the sandbox stays usable', async () => {
  const t0 = Date.now();
  await assert.rejects(sdk.runTerminal(sandbox.id, 'echo started; sleep 30; echo never', { timeoutMs: 1000 }), (err) => {
    assert.ok(err instanceof TimeoutError, `got ${err?.name}: ${err?.message}`);
    assert.equal(err.code, 'timeout');
    return true;
  });
  assert.ok(Date.now() - t0 < 25_000, 'the process was killed at the deadline');
  assert.equal(await sdk.runTerminal(sandbox.id, 'echo alive'), 'alive');
});

test('many lines: every line is streamed', async () => {
  let n = 0;
  let last;
  const out = await sdk.runTerminal(sandbox.id, 'seq 1 5000', {
    onStdout: (o) => {
      n++;
      last = o.line;
    },
  });
  assert.equal(n, 5000);
  assert.equal(last, '5000');
  assert.equal(out.split('\n').length, 5000);
});

test('concurrent commands on one connection keep their streams apart', async () => {
  const outs = await Promise.all(
    [1, 2, 3, 4].map(async (i) => {
      const lines = [];
      const out = await sdk.runTerminal(sandbox.id, `for j in 1 2 3 4 5; do echo cmd${i}-$j; sleep 0.0$i; done`, {
        onStdout: (o) => lines.push(o.line),
      });
      return { i, out, lines };
    }),
  );
  for (const { i, out, lines } of outs) {
    const want = [1, 2, 3, 4, 5].map((j) => `cmd${i}-${j}`);
    assert.deepEqual(lines, want);
    assert.equal(out, want.join('\n'));
  }
});

test('a throwing callback does not break the call', async () => {
  const out = await sdk.runTerminal(sandbox.id, 'echo a; echo b', {
    onStdout: () => {
      throw new Error('callback bug');
    },
  });
  assert.equal(out, 'a\nb');
});

test('unknown sandbox: SandboxError not_found', async () => {
  await assert.rejects(sdk.runTerminal('sb-doesnotexist', 'echo hi'), (err) => {
    assert.ok(err instanceof SandboxError, `got ${err?.name}`);
    assert.equal(err.code, 'not_found');
    assert.match(err.message, /sb-doesnotexist/);
    return true;
  });
});

test('server-side bad input: SandboxError invalid_argument naming the field', async () => {
  await assert.rejects(sdk.runTerminal(sandbox.id, 'pwd', { cwd: 'relative/dir' }), (err) => {
    assert.ok(err instanceof SandboxError, `got ${err?.name}`);
    assert.equal(err.code, 'invalid_argument');
    assert.match(err.message, /cwd/);
    return true;
  });
});

test('metrics count executions', async () => {
  const before = sdk.getMetrics();
  await sdk.runTerminal(sandbox.id, 'sleep 0.2');
  const m = sdk.getMetrics();
  assert.equal(m.totalRequests, before.totalRequests + 1);
  assert.equal(m.successfulRequests, before.successfulRequests + 1);
  assert.ok(m.totalExecutionTime >= before.totalExecutionTime + 150, 'execution time grew by the command\'s time');
});
