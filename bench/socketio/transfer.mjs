// Times a chunked Socket.IO upload and download (file:upload:* and
// file:download:*) of one large file through the official
// socket.io-client, and checks that both ends have the same SHA-256.
//
//   SDBX_URL=http://127.0.0.1:3000 SDBX_API_KEY=... [SDBX_PID=pid] \
//     MIB=1024 CHUNK_MIB=1 node bench/socketio/transfer.mjs
//
// It creates a python-3-11 sandbox (deleted at the end), streams MIB MiB of
// pseudo-random bytes into /workspace/big.bin without holding them in
// memory, reads them back, and prints MB/s both ways. With SDBX_PID, the
// server's peak and current resident memory (VmHWM, VmRSS) are sampled and
// printed too.
import { createHash, randomFillSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { call as callAck, connect } from './connect.mjs';

const mib = Number(process.env.MIB || 1024);
// Chunks in flight at once (sent before the previous ones are acked).
const window = Number(process.env.WINDOW || 4);
// Bytes per chunk: CHUNK_BYTES, else CHUNK_MIB MiB.
const chunk = Number(process.env.CHUNK_BYTES || 0) || Number(process.env.CHUNK_MIB || 1) * (1 << 20);
const pid = process.env.SDBX_PID;
const socket = await connect();
const call = (event, payload) => {
  const p = callAck(socket, event, payload, 120_000);
  p.catch(() => {}); // awaited later: a failure then still throws, and the sandbox is deleted
  return p;
};
const memory = () => {
  if (!pid) return undefined;
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k) => Number(status.match(new RegExp(`${k}:\\s+(\\d+)`))[1]);
  return { hwmMiB: Math.round(kb('VmHWM') / 1024), rssMiB: Math.round(kb('VmRSS') / 1024) };
};

// CPU seconds used so far by this client and, with SDBX_PID, the server.
const cpu = () => {
  const u = process.cpuUsage();
  const out = { client: (u.user + u.system) / 1e6 };
  if (pid) {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    out.server = (Number(f[11]) + Number(f[12])) / 100; // utime + stime, in clock ticks
  }
  return out;
};
const cpuSince = (a) => {
  const b = cpu();
  const r = (x) => Math.round(x * 100) / 100;
  return { client: r(b.client - a.client), server: a.server === undefined ? undefined : r(b.server - a.server) };
};

const before = memory();
const { sandbox } = await call('sandbox:create', { templateId: 'python-3-11', name: 'bench transfer' });
try {
  // Fresh random bytes per chunk (hashed as sent): nothing is held whole.
  const block = () => randomFillSync(Buffer.allocUnsafe(chunk));
  const total = mib * (1 << 20);
  const n = Math.ceil(total / chunk);
  const upHash = createHash('sha256');
  let peak = before;
  const sample = () => {
    const m = memory();
    if (m && (!peak || m.hwmMiB > peak.hwmMiB)) peak = m;
  };

  let t0 = process.hrtime.bigint();
  let c0 = cpu();
  const { uploadId } = await call('file:upload:begin', { sandboxId: sandbox.id, path: '/workspace/big.bin', size: total });
  const inflight = [];
  for (let i = 0; i < n; i++) {
    const data = i === n - 1 ? block().subarray(0, total - i * chunk) : block();
    upHash.update(data);
    inflight.push(call('file:upload:chunk', { uploadId, seq: i, data }));
    if (inflight.length >= window) await inflight.shift();
    if (i % 64 === 0) sample();
  }
  await Promise.all(inflight);
  const entry = await call('file:upload:end', { uploadId });
  const upSec = Number(process.hrtime.bigint() - t0) / 1e9;
  const upCPU = cpuSince(c0);
  if (entry.size !== total) throw new Error(`uploaded size ${entry.size}, want ${total}`);

  t0 = process.hrtime.bigint();
  c0 = cpu();
  const { downloadId, size } = await call('file:download:begin', { sandboxId: sandbox.id, path: '/workspace/big.bin', chunkSize: chunk });
  const downHash = createHash('sha256');
  // Several pulls in flight; chunks are put back in order by seq.
  let got = 0;
  let eof = false;
  let wanted = 0;
  const early = new Map();
  const pulls = [];
  while (!eof) {
    while (pulls.length < window) pulls.push(call('file:download:chunk', { downloadId }));
    const c = await pulls.shift();
    early.set(c.seq, c);
    for (let d = early.get(wanted); d !== undefined; d = early.get(wanted)) {
      early.delete(wanted++);
      downHash.update(d.data);
      got += d.data.length;
      if (d.eof) eof = true;
    }
    if (wanted % 64 === 0) sample();
  }
  // Pulls sent after the end answer eof with no data.
  await Promise.all(pulls);
  await call('file:download:end', { downloadId });
  const downSec = Number(process.hrtime.bigint() - t0) / 1e9;
  const downCPU = cpuSince(c0);
  sample();
  const up = upHash.digest('hex');
  const down = downHash.digest('hex');
  if (got !== total || size !== total || up !== down) throw new Error(`round trip differs: ${got}/${size} bytes, sha256 ${up} vs ${down}`);
  const mbps = (s) => Math.round(total / 1e6 / s);
  console.log(JSON.stringify({
    mib, chunkBytes: chunk, window, sha256: up,
    uploadMBps: mbps(upSec), downloadMBps: mbps(downSec),
    // CPU seconds each side spent on the upload and on the download.
    uploadCPU: upCPU, downloadCPU: downCPU,
    serverBefore: before, serverPeak: peak, serverAfter: memory(),
  }));
} finally {
  await call('sandbox:delete', { sandboxId: sandbox.id });
  socket.close();
}
