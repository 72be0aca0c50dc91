// Building and running a real sdbx server for the tests: `go build -o
// <tmp>/sdbx ./cmd/sdbx` in the repository, then `sdbx serve --addr
// 127.0.0.1:PORT --data-dir DIR` with SDBX_API_KEY set, ready once
// GET /v1/health answers 200; stopped with SIGTERM.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The package directory (sdk/typescript). */
export const pkgDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
/** The sdbx repository root (where go.mod is). */
export const repoRoot = path.resolve(pkgDir, '../..');

export function randomKey() {
  return 'sdbx-ts-test-' + randomBytes(24).toString('hex');
}

/** freePort returns a loopback port that was free a moment ago. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function run(cmd, args, opts) {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { ...opts, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (out += d));
    p.on('error', reject);
    p.on('close', (code, signal) => {
      if (code === 0) resolve(out);
      else reject(new Error(`${cmd} ${args.join(' ')}: exit ${code ?? signal}\n${out}`));
    });
  });
}

/** buildSdbx builds ./cmd/sdbx of the repository into dir and returns the binary's path. */
export async function buildSdbx(dir) {
  if (!existsSync(path.join(repoRoot, 'go.mod'))) {
    throw new Error(`no go.mod at ${repoRoot}: the SDK's tests expect to live in sdk/typescript of the sdbx repository`);
  }
  const bin = path.join(dir, 'sdbx');
  await run('go', ['build', '-o', bin, './cmd/sdbx'], { cwd: repoRoot, env: process.env });
  return bin;
}

/** serverEnv is this process's environment without SDBX_* variables. */
function serverEnv(apiKey) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('SDBX_')) env[k] = v;
  env.SDBX_API_KEY = apiKey;
  return env;
}

async function healthy(url) {
  try {
    const res = await fetch(`${url}/v1/health`, { signal: AbortSignal.timeout(2000) });
    await res.arrayBuffer();
    return res.status === 200;
  } catch {
    return false;
  }
}

/**
 * startServer starts `sdbx serve` and waits until it is healthy. Options:
 * bin, apiKey (default random), dataDir (default a fresh temporary
 * directory, removed by stop() when nothing is mounted under it), port
 * (default a free one), args (extra flags), readyMs (default 60 s).
 */
export async function startServer(o) {
  const apiKey = o.apiKey ?? randomKey();
  const ownDir = o.dataDir === undefined;
  const dataDir = o.dataDir ?? (await mkdtemp(path.join(os.tmpdir(), 'sdbx-ts-data-')));
  const port = o.port ?? (await freePort());
  const url = `http://127.0.0.1:${port}`;
  const args = ['serve', '--addr', `127.0.0.1:${port}`, '--data-dir', dataDir, ...(o.args ?? [])];
  const proc = spawn(o.bin, args, { env: serverEnv(apiKey), stdio: ['ignore', 'pipe', 'pipe'] });
  let logs = '';
  const keep = (d) => {
    logs += d;
    if (logs.length > 4_000_000) logs = logs.slice(-2_000_000);
  };
  proc.stdout.on('data', keep);
  proc.stderr.on('data', keep);
  let exited = null;
  const exit = new Promise((resolve) => {
    proc.on('exit', (code, signal) => {
      exited = { code, signal };
      resolve(exited);
    });
    proc.on('error', (err) => {
      exited = { code: null, signal: null, err };
      resolve(exited);
    });
  });
  const deadline = Date.now() + (o.readyMs ?? 60_000);
  for (;;) {
    if (exited) {
      throw new Error(
        `sdbx serve exited before it was healthy (${exited.err?.message ?? `exit ${exited.code ?? exited.signal}`})\nserver output:\n${logs}`,
      );
    }
    if (await healthy(url)) break;
    if (Date.now() > deadline) {
      proc.kill('SIGKILL');
      await exit;
      throw new Error(`sdbx serve not healthy within ${o.readyMs ?? 60_000} ms\nserver output:\n${logs}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    apiKey,
    port,
    dataDir,
    bin: o.bin,
    logs: () => logs,
    get exited() {
      return exited;
    },
    /**
     * stop sends SIGTERM and waits (at most limitMs) for the exit; then
     * removes the data directory it made (unless removeDataDir is false).
     * It throws when the server had to be killed or exited non-zero.
     */
    async stop({ limitMs = 30_000, removeDataDir = ownDir } = {}) {
      let problem;
      if (!exited) {
        proc.kill('SIGTERM');
        const t = setTimeout(() => proc.kill('SIGKILL'), limitMs);
        await exit;
        clearTimeout(t);
        if (exited.signal === 'SIGKILL') problem = `sdbx serve did not exit within ${limitMs} ms of SIGTERM (killed)`;
        else if (exited.code !== 0) problem = `sdbx serve exited with ${exited.code ?? exited.signal} after SIGTERM`;
      }
      if (removeDataDir) await removeDir(dataDir);
      if (problem) throw new Error(`${problem}\nserver output (tail):\n${logs.slice(-4000)}`);
    },
  };
}

/** mountsUnder lists the mount points at or below dir. */
export function mountsUnder(dir) {
  const clean = path.resolve(dir);
  const out = [];
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const f = line.split(' ');
    if (f.length < 5) continue;
    const mp = f[4].replace(/\\([0-7]{3})/g, (_, o) => String.fromCharCode(parseInt(o, 8)));
    if (mp === clean || mp.startsWith(clean + '/')) out.push(mp);
  }
  return out;
}

/**
 * removeDir removes a server data directory, unless something is still
 * mounted under it (removing through a leftover mount could reach host
 * files): then it leaves it and says so.
 */
export async function removeDir(dir) {
  let mounts = [];
  try {
    mounts = mountsUnder(dir);
  } catch {
    // No mountinfo: not Linux; nothing can be mounted by sdbx there.
  }
  if (mounts.length > 0) {
    console.error(`# left ${dir} in place: still mounted under it: ${mounts.join(', ')}`);
    return;
  }
  await rm(dir, { recursive: true, force: true });
}
