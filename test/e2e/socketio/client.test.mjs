// Interop test of the sdbx Socket.IO transport with the official
// socket.io-client, against a live server:
//
//   SDBX_URL=http://127.0.0.1:3000 SDBX_API_KEY=... node --test client.test.mjs
//
// SDBX_TEMPLATE picks the template (default python-3-11). The test only
// relies on what a real sandbox of that template does (bash, echo, seq, and
// simple Python: print, assignments, 1/0, raise), so it runs unchanged
// against the Go test's fake service and a real server.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { io } from 'socket.io-client';

const url = process.env.SDBX_URL;
const apiKey = process.env.SDBX_API_KEY;
const templateId = process.env.SDBX_TEMPLATE || 'python-3-11';
if (!url || !apiKey) {
  throw new Error('SDBX_URL and SDBX_API_KEY must be set');
}

const ACK_TIMEOUT_MS = 60_000;

// The transports the official client can use: websocket only, the default
// (long-polling upgraded to websocket), and long-polling only.
const modes = {
  websocket: { transports: ['websocket'] },
  default: {},
  polling: { transports: ['polling'], upgrade: false },
};

// connect opens a socket with the given key (null: no auth at all).
function connect(opts, key = apiKey) {
  return io(url, {
    auth: key === null ? undefined : { apiKey: key },
    reconnection: false,
    forceNew: true,
    timeout: 10_000,
    ...opts,
  });
}

// connected resolves with the socket once connected, or rejects with the
// connect_error.
function connected(socket) {
  return new Promise((resolve, reject) => {
    socket.once('connect', () => resolve(socket));
    socket.once('connect_error', reject);
  });
}

function request(socket, event, payload) {
  return socket.timeout(ACK_TIMEOUT_MS).emitWithAck(event, payload);
}

async function ok(socket, event, payload) {
  const ack = await request(socket, event, payload);
  assert.equal(ack.ok, true, `${event} failed: ${JSON.stringify(ack)}`);
  return ack.data;
}

async function fails(socket, event, payload, code) {
  const ack = await request(socket, event, payload);
  assert.equal(ack.ok, false, `${event} should fail, got ${JSON.stringify(ack)}`);
  assert.equal(ack.error.code, code, `${event}: ${JSON.stringify(ack.error)}`);
  assert.equal(typeof ack.error.message, 'string');
  assert.ok(ack.error.message.length > 0);
  return ack.error;
}

// Streams collects stream:output, stream:result and stream:error events by
// streamId (each tagged with kind: output, result or error), and checks
// that none arrives for a stream whose ack was already seen.
class Streams {
  constructor(socket) {
    this.lines = new Map();
    this.closed = new Set();
    this.late = [];
    for (const kind of ['output', 'result', 'error']) {
      socket.on(`stream:${kind}`, (ev) => {
        if (this.closed.has(ev.streamId)) this.late.push(ev);
        if (!this.lines.has(ev.streamId)) this.lines.set(ev.streamId, []);
        this.lines.get(ev.streamId).push({ kind, ...ev });
      });
    }
  }

  async run(socket, payload, event = 'terminal:run') {
    const ack = await request(socket, event, payload);
    this.closed.add(payload.streamId);
    return { ack, events: this.lines.get(payload.streamId) ?? [] };
  }
}

// outputLines lists [stream, line] of the output events.
function outputLines(events) {
  return events.filter((e) => e.kind === 'output').map((e) => [e.stream, e.line]);
}

describe('handshake', () => {
  for (const [mode, opts] of Object.entries(modes)) {
    test(`${mode}: unknown key is refused with unauthenticated`, async () => {
      const socket = connect(opts, 'not-a-key');
      try {
        const err = await connected(socket).then(
          () => assert.fail('connected with a bad key'),
          (e) => e,
        );
        assert.equal(err.data?.code, 'unauthenticated', JSON.stringify(err.data));
        assert.equal(typeof err.data.message, 'string');
        assert.equal(err.message, err.data.message);
      } finally {
        socket.close();
      }
    });
  }

  test('missing key is refused with unauthenticated', async () => {
    const socket = connect(modes.websocket, null);
    try {
      const err = await connected(socket).then(
        () => assert.fail('connected without a key'),
        (e) => e,
      );
      assert.equal(err.data?.code, 'unauthenticated');
    } finally {
      socket.close();
    }
  });
});

for (const [mode, opts] of Object.entries(modes)) {
  describe(`operations over ${mode}`, () => {
    let socket;
    let streams;
    let sandboxId;
    let seq = 0;
    const streamId = () => `${mode}-${++seq}`;

    before(async () => {
      socket = await connected(connect(opts));
      streams = new Streams(socket);
    });

    after(async () => {
      if (sandboxId) {
        await request(socket, 'sandbox:delete', { sandboxId }).catch(() => {});
      }
      socket?.close();
    });

    test('template:list', async () => {
      const page = await ok(socket, 'template:list', {});
      assert.equal(page.page, 1);
      assert.equal(page.pageSize, 10);
      assert.ok(page.total >= 1);
      assert.ok(page.templates.length >= 1 && page.templates.length <= 10);
      const all = await ok(socket, 'template:list', { pageSize: 100 });
      const t = all.templates.find((x) => x.id === templateId);
      assert.ok(t, `${templateId} not listed: ${JSON.stringify(all)}`);
      assert.equal(typeof t.version, 'string');
      assert.ok(Array.isArray(t.dependencies));

      const small = await ok(socket, 'template:list', { page: 1, pageSize: 1 });
      assert.equal(small.pageSize, 1);
      assert.equal(small.templates.length, 1);
    });

    test('template:get', async () => {
      const t = await ok(socket, 'template:get', { templateId });
      assert.equal(t.id, templateId);
      await fails(socket, 'template:get', { templateId: 'no-such-template' }, 'not_found');
    });

    test('sandbox:create', async () => {
      const data = await ok(socket, 'sandbox:create', {
        templateId,
        name: `e2e ${mode}`,
        expiryTime: 600_000,
        initialEnvVars: { GREETING: 'hi there' },
      });
      const sb = data.sandbox;
      assert.match(sb.id, /^sb-/);
      sandboxId = sb.id;
      assert.equal(sb.name, `e2e ${mode}`);
      assert.equal(sb.templateId, templateId);
      assert.equal(sb.status, 'ready');
      assert.equal(sb.envVars.GREETING, 'hi there');
      assert.ok(!Number.isNaN(Date.parse(sb.createdAt)));
      assert.ok(Date.parse(sb.expiresAt) > Date.parse(sb.createdAt));
    });

    test('terminal:run streams output before the ack', async () => {
      const id = streamId();
      const { ack, events } = await streams.run(socket, {
        sandboxId, streamId: id, command: 'echo hello; echo err >&2',
      });
      assert.equal(ack.ok, true, JSON.stringify(ack));
      assert.equal(ack.data.exitCode, 0);
      assert.deepEqual(ack.data.stdout, ['hello']);
      assert.deepEqual(ack.data.stderr, ['err']);
      assert.equal(typeof ack.data.durationMs, 'number');
      assert.equal(ack.data.truncated, false);

      const byStream = (s) => events.filter((e) => e.stream === s).map((e) => e.line);
      assert.deepEqual(byStream('stdout'), ['hello']);
      assert.deepEqual(byStream('stderr'), ['err']);
      for (const e of events) {
        assert.equal(e.streamId, id);
        assert.equal(typeof e.timestamp, 'number');
        assert.ok(e.timestamp > 1_600_000_000_000, `timestamp in ms: ${e.timestamp}`);
      }
    });

    test('terminal:run keeps the order of many lines', async () => {
      const id = streamId();
      const n = 500;
      const { ack, events } = await streams.run(socket, {
        sandboxId, streamId: id, command: `seq 1 ${n}`,
      });
      assert.equal(ack.ok, true, JSON.stringify(ack));
      const want = Array.from({ length: n }, (_, i) => String(i + 1));
      assert.deepEqual(events.map((e) => e.line), want);
      assert.deepEqual(ack.data.stdout, want);
    });

    test('terminal:run without streamId, with args, env and exit code', async () => {
      const res = await ok(socket, 'terminal:run', {
        sandboxId, command: 'echo "$GREETING $EXTRA"; exit 3', envs: { EXTRA: 'x' },
      });
      assert.equal(res.exitCode, 3);
      assert.deepEqual(res.stdout, ['hi there x']);

      const argv = await ok(socket, 'terminal:run', {
        sandboxId, args: ['/bin/echo', 'a b', 'c'],
      });
      assert.deepEqual(argv.stdout, ['a b c']);
    });

    test('concurrent commands keep their streams apart', async () => {
      const runs = [1, 2, 3].map((k) => streams.run(socket, {
        sandboxId, streamId: streamId(), command: `for i in $(seq 1 50); do echo ${k}-$i; done`,
      }));
      const results = await Promise.all(runs);
      results.forEach(({ ack, events }, i) => {
        const k = i + 1;
        assert.equal(ack.ok, true);
        assert.deepEqual(events.map((e) => e.line), Array.from({ length: 50 }, (_, j) => `${k}-${j + 1}`));
      });
      assert.deepEqual(streams.late, [], 'output arrived after its ack');
    });

    test('sandbox:get and sandbox:list', async () => {
      const sb = await ok(socket, 'sandbox:get', { sandboxId });
      assert.equal(sb.id, sandboxId);
      assert.equal(sb.templateId, templateId);

      const list = await ok(socket, 'sandbox:list', {});
      assert.ok(list.sandboxes.some((x) => x.id === sandboxId));
      const none = await ok(socket, 'sandbox:list');
      assert.ok(none.sandboxes.some((x) => x.id === sandboxId));
    });

    test('errors are acks with a code and a message', async () => {
      await fails(socket, 'sandbox:get', { sandboxId: 'sb-doesnotexist' }, 'not_found');
      await fails(socket, 'terminal:run', { sandboxId: 'sb-doesnotexist', command: 'true' }, 'not_found');

      let e = await fails(socket, 'sandbox:create', { templateId, bogus: 1 }, 'invalid_argument');
      assert.match(e.message, /bogus/);
      e = await fails(socket, 'sandbox:create', { templateId: 5 }, 'invalid_argument');
      assert.match(e.message, /templateId/);
      e = await fails(socket, 'sandbox:create', { templateId, initialEnvVars: { A: 1 } }, 'invalid_argument');
      assert.match(e.message, /initialEnvVars/);
      e = await fails(socket, 'sandbox:get', {}, 'invalid_argument');
      assert.match(e.message, /sandboxId/);
      e = await fails(socket, 'terminal:run', { sandboxId, streamId: '', command: 'true' }, 'invalid_argument');
      assert.match(e.message, /streamId/);
      e = await fails(socket, 'terminal:run', { sandboxId, streamId: 'x'.repeat(129), command: 'true' }, 'invalid_argument');
      assert.match(e.message, /streamId/);
      e = await fails(socket, 'sandbox:get', 'not an object', 'invalid_argument');
      assert.match(e.message, /payload/);
      e = await fails(socket, 'no:such-event', {}, 'invalid_argument');
      assert.match(e.message, /no:such-event/);
    });

    test('code:run streams output before the ack', async () => {
      const id = streamId();
      const { ack, events } = await streams.run(socket, {
        sandboxId, streamId: id, code: 'print("hello")\nprint("world")',
      }, 'code:run');
      assert.equal(ack.ok, true, JSON.stringify(ack));
      const { execution, metadata } = ack.data;
      assert.deepEqual(execution.logs.stdout, ['hello', 'world']);
      assert.deepEqual(execution.logs.stderr, []);
      assert.equal(execution.error, undefined);
      assert.ok(Array.isArray(execution.results));
      assert.equal(typeof execution.executionCount, 'number');
      assert.equal(metadata.sandboxId, sandboxId);
      assert.equal(metadata.language, 'python');
      assert.equal(typeof metadata.contextId, 'string');
      assert.equal(typeof metadata.durationMs, 'number');

      assert.deepEqual(outputLines(events), [['stdout', 'hello'], ['stdout', 'world']]);
      for (const e of events) {
        assert.equal(e.streamId, id);
        assert.equal(e.jobId, undefined);
        assert.ok(e.timestamp > 1_600_000_000_000, `timestamp in ms: ${e.timestamp}`);
      }
    });

    test('code:run keeps state in the default context', async () => {
      await ok(socket, 'code:run', { sandboxId, code: 'x = 10' });
      const printed = await ok(socket, 'code:run', { sandboxId, code: 'print(x)' });
      assert.deepEqual(printed.execution.logs.stdout, ['10']);
      const value = await ok(socket, 'code:run', { sandboxId, code: 'x' });
      assert.ok(
        value.execution.results.some((r) => r.text === '10' && r.isMainResult === true),
        JSON.stringify(value.execution.results),
      );
    });

    test('code:run streams stderr', async () => {
      const { ack, events } = await streams.run(socket, {
        sandboxId, streamId: streamId(), code: 'import sys\nprint("oops", file=sys.stderr)',
      }, 'code:run');
      assert.equal(ack.ok, true, JSON.stringify(ack));
      assert.deepEqual(ack.data.execution.logs.stderr, ['oops']);
      assert.deepEqual(outputLines(events), [['stderr', 'oops']]);
    });

    test('code:run reports an exception in the result', async () => {
      const { ack, events } = await streams.run(socket, {
        sandboxId, streamId: streamId(), code: '1/0',
      }, 'code:run');
      assert.equal(ack.ok, true, 'a raised exception is not an operation error');
      const { error } = ack.data.execution;
      assert.equal(error.name, 'ZeroDivisionError');
      assert.equal(typeof error.value, 'string');
      assert.equal(typeof error.traceback, 'string');
      const raised = events.filter((e) => e.kind === 'error');
      assert.equal(raised.length, 1, JSON.stringify(events));
      assert.equal(raised[0].error.name, 'ZeroDivisionError');
    });

    test('code:run errors', async () => {
      await fails(socket, 'code:run', { sandboxId: 'sb-doesnotexist', code: 'print(1)' }, 'not_found');
      let e = await fails(socket, 'code:run', { sandboxId, code: 'print(1)', bogus: true }, 'invalid_argument');
      assert.match(e.message, /bogus/);
      e = await fails(socket, 'code:run', { sandboxId, code: 'print(1)', timeoutMs: 'soon' }, 'invalid_argument');
      assert.match(e.message, /timeoutMs/);
      e = await fails(socket, 'code:run', { code: 'print(1)' }, 'invalid_argument');
      assert.match(e.message, /sandboxId/);
      await fails(socket, 'code:run', { sandboxId, code: '' }, 'invalid_argument');
    });

    test('context:create, context:list and context:delete', async () => {
      const c = await ok(socket, 'context:create', { sandboxId, language: 'python' });
      assert.equal(typeof c.id, 'string');
      assert.equal(c.sandboxId, sandboxId);
      assert.equal(c.language, 'python');
      assert.equal(typeof c.cwd, 'string');
      assert.equal(typeof c.envVars, 'object');
      assert.ok(!Number.isNaN(Date.parse(c.createdAt)));

      await ok(socket, 'code:run', { sandboxId, context: c.id, code: 'y = 5' });
      const inside = await ok(socket, 'code:run', { sandboxId, context: c.id, code: 'print(y)' });
      assert.deepEqual(inside.execution.logs.stdout, ['5']);
      assert.equal(inside.metadata.contextId, c.id);
      const outside = await ok(socket, 'code:run', { sandboxId, code: 'print(y)' });
      assert.equal(outside.execution.error?.name, 'NameError', 'the default context is a different interpreter');

      const list = await ok(socket, 'context:list', { sandboxId });
      assert.ok(list.contexts.some((x) => x.id === c.id), JSON.stringify(list));
      assert.deepEqual(await ok(socket, 'context:delete', { contextId: c.id }), {});
      const after = await ok(socket, 'context:list', { sandboxId });
      assert.ok(!after.contexts.some((x) => x.id === c.id), 'deleted context still listed');
      await fails(socket, 'context:delete', { contextId: c.id }, 'not_found');
      await fails(socket, 'code:run', { sandboxId, context: c.id, code: 'print(1)' }, 'not_found');
      const e = await fails(socket, 'context:create', { sandboxId, env: {} }, 'invalid_argument');
      assert.match(e.message, /env/);
    });

    test('file:write, file:read, file:list and file:delete', async () => {
      const dir = `/workspace/e2e-${mode}`;
      const text = 'hello\nwörld\n';
      const entry = await ok(socket, 'file:write', {
        sandboxId, path: `${dir}/hello.txt`, content: text, createParents: true,
      });
      assert.equal(entry.name, 'hello.txt');
      assert.equal(entry.path, `${dir}/hello.txt`);
      assert.equal(entry.type, 'file');
      assert.equal(entry.size, Buffer.byteLength(text));
      assert.equal(typeof entry.mode, 'string');
      assert.ok(!Number.isNaN(Date.parse(entry.modifiedAt)));
      assert.deepEqual(
        await ok(socket, 'file:read', { sandboxId, path: `${dir}/hello.txt` }),
        { content: text, encoding: 'utf8', size: Buffer.byteLength(text) },
      );

      // Bytes that are not UTF-8, NUL included, round-trip as base64.
      const bytes = Buffer.from([0, 1, 2, 0, 0xff, 0xfe, 10, 0x80, 0x61, 0]);
      const written = await ok(socket, 'file:write', {
        sandboxId, path: `${dir}/data.bin`, content: bytes.toString('base64'), encoding: 'base64',
      });
      assert.equal(written.size, bytes.length);
      const read = await ok(socket, 'file:read', { sandboxId, path: `${dir}/data.bin`, encoding: 'base64' });
      assert.equal(read.encoding, 'base64');
      assert.equal(read.size, bytes.length);
      assert.deepEqual(Buffer.from(read.content, 'base64'), bytes);
      let e = await fails(socket, 'file:read', { sandboxId, path: `${dir}/data.bin` }, 'invalid_argument');
      assert.match(e.message, /base64/);

      const list = await ok(socket, 'file:list', { sandboxId, path: dir });
      assert.equal(list.path, dir);
      assert.deepEqual(list.entries.map((x) => [x.name, x.type]), [['data.bin', 'file'], ['hello.txt', 'file']]);
      const top = await ok(socket, 'file:list', { sandboxId });
      assert.ok(top.entries.some((x) => x.name === `e2e-${mode}` && x.type === 'dir'), JSON.stringify(top));

      e = await fails(socket, 'file:write', { sandboxId, path: 'relative.txt', content: 'x' }, 'invalid_argument');
      e = await fails(socket, 'file:write', { sandboxId, path: `${dir}/x`, content: 'x', encoding: 'latin1' }, 'invalid_argument');
      assert.match(e.message, /encoding/);
      await fails(socket, 'file:read', { sandboxId, path: `${dir}/missing.txt` }, 'not_found');

      assert.deepEqual(await ok(socket, 'file:delete', { sandboxId, path: `${dir}/hello.txt` }), {});
      await fails(socket, 'file:read', { sandboxId, path: `${dir}/hello.txt` }, 'not_found');
      await ok(socket, 'file:delete', { sandboxId, path: dir, recursive: true });
      await fails(socket, 'file:list', { sandboxId, path: dir }, 'not_found');
    });

    test('batch:run streams events with their jobId', async () => {
      const id = streamId();
      const { ack, events } = await streams.run(socket, {
        sandboxId, streamId: id, concurrency: 2,
        jobs: [
          { id: 'a', code: 'print("a1")\nprint("a2")' },
          { id: 'b', code: '1/0', timeout: 30_000 },
          { id: 'c', code: 'print("c1")', priority: 5 },
        ],
      }, 'batch:run');
      assert.equal(ack.ok, true, JSON.stringify(ack));
      const results = ack.data.results;
      assert.deepEqual(results.map((r) => [r.jobId, r.success]), [['a', true], ['b', false], ['c', true]]);
      assert.match(results[1].error, /ZeroDivisionError/);
      assert.deepEqual(results[0].execution.logs.stdout, ['a1', 'a2']);
      for (const r of results) assert.equal(typeof r.duration, 'number');

      for (const e of events) {
        assert.equal(e.streamId, id);
        assert.ok(['a', 'b', 'c'].includes(e.jobId), JSON.stringify(e));
      }
      const linesOf = (job) => outputLines(events.filter((e) => e.jobId === job)).map(([, l]) => l);
      assert.deepEqual(linesOf('a'), ['a1', 'a2']);
      assert.deepEqual(linesOf('c'), ['c1']);
      const raised = events.filter((e) => e.kind === 'error');
      assert.deepEqual(raised.map((e) => [e.jobId, e.error.name]), [['b', 'ZeroDivisionError']]);
      assert.deepEqual(streams.late, [], 'events arrived after their ack');

      const e = await fails(socket, 'batch:run', { sandboxId, jobs: [{ id: 'a', code: '1', bogus: 1 }] }, 'invalid_argument');
      assert.match(e.message, /jobs\[0\]\.bogus/);
    });

    test('template:create refuses malformed configs', async () => {
      let e = await fails(socket, 'template:create', { name: 'x', language: 'python', bogus: 1 }, 'invalid_argument');
      assert.match(e.message, /bogus/);
      e = await fails(socket, 'template:create', { name: 'x', language: 'python', dependencies: 'pandas' }, 'invalid_argument');
      assert.match(e.message, /dependencies/);
    });

    test('sandbox:delete', async () => {
      const data = await ok(socket, 'sandbox:delete', { sandboxId });
      assert.deepEqual(data, {});
      // A deleted sandbox is either gone or reported terminated for a while.
      const after = await request(socket, 'sandbox:get', { sandboxId });
      if (after.ok) {
        assert.equal(after.data.status, 'terminated');
      } else {
        assert.equal(after.error.code, 'not_found');
      }
      const list = await ok(socket, 'sandbox:list', {});
      assert.ok(!list.sandboxes.some((x) => x.id === sandboxId), 'deleted sandbox still listed');
      await fails(socket, 'sandbox:delete', { sandboxId }, 'not_found');
      sandboxId = undefined;
    });
  });
}
