// portUrl/getHost build the proxy URL of a sandbox port without contacting
// the server, and check their arguments.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import SandboxSDK, { ValidationError } from '../../dist/index.js';

function sdk(serverUrl) {
  return new SandboxSDK({ apiKey: 'k', serverUrl, maxRetries: 0, retryDelay: 1 });
}

test('portUrl builds the proxy URL', () => {
  for (const [server, id, port, want] of [
    ['http://127.0.0.1:3000', 'sb-abc', 8000, 'http://127.0.0.1:3000/v1/sandboxes/sb-abc/ports/8000/'],
    ['http://127.0.0.1:3000/', 'sb-abc', 80, 'http://127.0.0.1:3000/v1/sandboxes/sb-abc/ports/80/'],
    ['ws://127.0.0.1:3000/sdbx/', 'sb-x', 5173, 'http://127.0.0.1:3000/sdbx/v1/sandboxes/sb-x/ports/5173/'],
    ['wss://127.0.0.1', 'sb/x', 1, 'https://127.0.0.1/v1/sandboxes/sb%2Fx/ports/1/'],
  ]) {
    const s = sdk(server);
    try {
      assert.equal(s.portUrl(id, port), want);
      assert.equal(s.getHost(id, port), want);
    } finally {
      s.disconnect();
    }
  }
});

test('portUrl checks its arguments', () => {
  const s = sdk('http://127.0.0.1:3000');
  try {
    for (const [id, port, field] of [
      ['', 8000, 'sandboxId'],
      ['sb-x', 0, 'port'],
      ['sb-x', 65536, 'port'],
      ['sb-x', 80.5, 'port'],
      ['sb-x', '80', 'port'],
    ]) {
      assert.throws(() => s.portUrl(id, port), (e) => e instanceof ValidationError && e.field === field);
    }
  } finally {
    s.disconnect();
  }
});
