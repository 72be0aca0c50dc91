// What the end-to-end tests share: the server scripts/run-tests.mjs started
// (SDBX_URL, SDBX_API_KEY), SDKs connected to it, and cleanup.
import { test } from 'node:test';
import SandboxSDK, { SandboxSDKError } from '../../dist/index.js';

/** server returns {url, apiKey} of the test server, or throws why there is none. */
export function server() {
  if (process.env.SDBX_E2E_ERROR) {
    throw new Error(`no sdbx server: ${process.env.SDBX_E2E_ERROR}`);
  }
  const url = process.env.SDBX_URL;
  const apiKey = process.env.SDBX_API_KEY;
  if (!url || !apiKey) {
    throw new Error('no sdbx server: run the tests through `npm test` (scripts/run-tests.mjs) or set SDBX_URL and SDBX_API_KEY');
  }
  return { url, apiKey };
}

/** sdbxBin is the binary run-tests.mjs built, for tests that start their own server. */
export function sdbxBin() {
  server(); // same failure when the build failed
  const bin = process.env.SDBX_BIN;
  if (!bin) throw new Error('SDBX_BIN is not set: run the tests through `npm test`');
  return bin;
}

/** newSDK makes an SDK for the test server; closeAll() disconnects every one made. */
const made = new Set();
export function newSDK(extra = {}) {
  const { url, apiKey } = server();
  const sdk = new SandboxSDK({ apiKey, serverUrl: url, ...extra });
  made.add(sdk);
  return sdk;
}

export function closeAll() {
  for (const sdk of made) sdk.disconnect();
  made.clear();
}

/**
 * isMissingOperation tells whether err is the server's answer to an
 * operation it does not implement (yet): an unknown event, or a stub that
 * answers unavailable "... not implemented yet".
 */
export function isMissingOperation(err) {
  if (!(err instanceof SandboxSDKError)) return false;
  if (err.code === 'invalid_argument' && /event "[^"]+": unknown/.test(err.message)) return true;
  return err.code === 'unavailable' && /not implemented/.test(err.message);
}

/**
 * serverTest is test() for a test that needs an operation the server may
 * not implement yet: with SDBX_TS_ALLOW_MISSING=1 such a test is skipped
 * (saying which operation is missing) instead of failing.
 */
export function serverTest(name, fn, opts = {}) {
  test(name, opts, async (t) => {
    try {
      await fn(t);
    } catch (e) {
      if (process.env.SDBX_TS_ALLOW_MISSING === '1' && isMissingOperation(e)) {
        t.skip(`server does not implement ${e.operation ?? 'an operation'} yet: ${e.message}`);
        return;
      }
      throw e;
    }
  });
}

/** captureConsole collects what console.log/error/warn print while fn runs (and still prints it). */
export async function captureConsole(fn) {
  const lines = [];
  const orig = { log: console.log, error: console.error, warn: console.warn, info: console.info };
  for (const k of Object.keys(orig)) {
    console[k] = (...args) => {
      lines.push({ level: k, args });
      orig[k](...args);
    };
  }
  try {
    await fn();
  } finally {
    Object.assign(console, orig);
  }
  return lines;
}

/** deleteQuietly deletes sandboxes, ignoring the ones already gone. */
export async function deleteQuietly(sdk, ...ids) {
  await Promise.all(
    ids.filter(Boolean).map((id) =>
      sdk.deleteSandbox(id).catch((e) => {
        if (!(e instanceof SandboxSDKError && e.code === 'not_found')) throw e;
      }),
    ),
  );
}

/**
 * openSandbox is the before hook of a test file whose tests share one
 * python-3-11 sandbox: it connects a new SDK (extra: its options) and
 * creates the sandbox, named name. closeSandbox is its after hook.
 */
export async function openSandbox(name, extra = {}) {
  const sdk = newSDK(extra);
  await sdk.waitForConnection();
  const { sandbox } = await sdk.createSandbox({ templateId: 'python-3-11', name });
  return { sdk, sandbox };
}

/** closeSandbox deletes openSandbox's sandbox (unless already gone) and disconnects every SDK. */
export async function closeSandbox(sdk, sandbox) {
  if (sandbox) await deleteQuietly(sdk, sandbox.id);
  closeAll();
}

/**
 * assertGone checks that a deleted sandbox is gone: getSandboxStatus says
 * 'terminated', or fails with not_found.
 */
export async function assertGone(sdk, id) {
  let status;
  try {
    status = await sdk.getSandboxStatus(id);
  } catch (e) {
    if (e instanceof SandboxSDKError && e.code === 'not_found') return;
    throw e;
  }
  if (status.status !== 'terminated') {
    throw new Error(`sandbox ${id} should be gone, its status is ${status.status}`);
  }
}

export function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}
