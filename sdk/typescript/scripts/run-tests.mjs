#!/usr/bin/env node
// Runs the SDK's tests (node:test): the unit tests, and the end-to-end tests
// against a real sdbx server that this script builds from the repository
// (`go build -o <tmp>/sdbx ./cmd/sdbx`), starts on 127.0.0.1 with a random
// API key and a fresh data directory, and stops with SIGTERM at the end.
//
//   node scripts/run-tests.mjs                 all tests
//   node scripts/run-tests.mjs test/e2e/x.test.mjs ...
//
// With SDBX_URL and SDBX_API_KEY set, the end-to-end tests use that server
// instead (tests that need a server of their own still build one).
// The tests see SDBX_URL, SDBX_API_KEY, SDBX_BIN (the built binary, for
// tests that start their own server) and, when the server could not be
// built or started, SDBX_E2E_ERROR (every end-to-end test then fails with
// it). Needs root for real sandboxes.
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { buildSdbx, pkgDir, removeDir, startServer } from '../test/helpers/server.mjs';

function testFiles(args) {
  if (args.length > 0) return args;
  const files = [];
  for (const dir of ['test/unit', 'test/e2e']) {
    for (const f of readdirSync(path.join(pkgDir, dir)).sort()) {
      if (f.endsWith('.test.mjs')) files.push(path.join(dir, f));
    }
  }
  return files;
}

const files = testFiles(process.argv.slice(2));
const needsServer = files.some((f) => !f.includes('unit'));
const env = { ...process.env };
let server;
let binDir;

async function setUp() {
  if (!needsServer) return;
  const external = process.env.SDBX_URL && process.env.SDBX_API_KEY;
  try {
    binDir = await mkdtemp(path.join(os.tmpdir(), 'sdbx-ts-bin-'));
    const t0 = Date.now();
    env.SDBX_BIN = await buildSdbx(binDir);
    console.log(`# built ${env.SDBX_BIN} in ${Date.now() - t0} ms`);
    if (external) {
      console.log(`# using the server at ${process.env.SDBX_URL}`);
      return;
    }
    server = await startServer({ bin: env.SDBX_BIN });
    env.SDBX_URL = server.url;
    env.SDBX_API_KEY = server.apiKey;
    console.log(`# sdbx serve on ${server.url} (data ${server.dataDir})`);
  } catch (e) {
    env.SDBX_E2E_ERROR = String(e?.message ?? e);
    console.error(`# no sdbx server for the end-to-end tests: ${env.SDBX_E2E_ERROR}`);
  }
}

async function tearDown() {
  let ok = true;
  if (server) {
    try {
      await server.stop();
    } catch (e) {
      ok = false;
      console.error(`# ${e.message}`);
    }
    if (process.env.SDBX_TEST_SERVER_LOG) {
      console.log(`# server output:\n${server.logs()}`);
    }
    server = undefined;
  }
  if (binDir) await removeDir(binDir);
  return ok;
}

/** The whole run's bound: a test file that never exits (a leaked handle) must not hang CI. */
const RUN_LIMIT_MS = Number(process.env.SDBX_TS_TEST_LIMIT_MS) || 30 * 60_000;

function runTests() {
  return new Promise((resolve) => {
    const args = ['--test', '--test-force-exit', '--test-concurrency=1', '--test-timeout=600000', '--test-reporter=spec', ...files];
    const child = spawn(process.execPath, args, { cwd: pkgDir, env, stdio: 'inherit' });
    const forward = (sig) => child.kill(sig);
    process.on('SIGINT', forward);
    process.on('SIGTERM', forward);
    const watchdog = setTimeout(() => {
      console.error(`# tests still running after ${RUN_LIMIT_MS} ms: killed`);
      child.kill('SIGKILL');
    }, RUN_LIMIT_MS);
    child.on('close', (code, signal) => {
      clearTimeout(watchdog);
      process.off('SIGINT', forward);
      process.off('SIGTERM', forward);
      resolve(code ?? (signal ? 1 : 0));
    });
  });
}

await setUp();
const code = await runTests();
const cleanOk = await tearDown();
process.exit(code !== 0 ? code : cleanOk ? 0 : 1);
