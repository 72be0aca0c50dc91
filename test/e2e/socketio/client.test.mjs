// Interop test of the sdbx Socket.IO transport with the official
// socket.io-client, against a live server:
//
//   SDBX_URL=http://127.0.0.1:3000 SDBX_API_KEY=... node --test client.test.mjs
//
// SDBX_TEMPLATE picks the template (default python-3-11). The test only
// relies on what a real sandbox of that template does (bash, echo, seq), so
// it runs unchanged against the Go test's fake service and a real server.
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

// Streams collects stream:output events by streamId, and checks that none
// arrives for a stream whose ack was already seen.
class Streams {
  constructor(socket) {
    this.lines = new Map();
    this.closed = new Set();
    this.late = [];
    socket.on('stream:output', (ev) => {
      if (this.closed.has(ev.streamId)) this.late.push(ev);
      if (!this.lines.has(ev.streamId)) this.lines.set(ev.streamId, []);
      this.lines.get(ev.streamId).push(ev);
    });
  }

  async run(socket, payload) {
    const ack = await request(socket, 'terminal:run', payload);
    this.closed.add(payload.streamId);
    return { ack, events: this.lines.get(payload.streamId) ?? [] };
  }
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
