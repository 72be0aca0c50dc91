// Times `x += 1` code:run round trips through socket.io-client against a
// running sdbx server. Env: SDBX_URL, SDBX_API_KEY, SDBX_SANDBOX, N.
// Prints the p50, p90 and p99 in microseconds as JSON.
import { call, connect } from './connect.mjs';

const n = Number(process.env.N || 2000);
const socket = await connect();
const run = (code) => call(socket, 'code:run', { sandboxId: process.env.SDBX_SANDBOX, code }, 30000);
await run('y = 0');
const times = [];
for (let i = 0; i < n + 100; i++) {
  const t0 = process.hrtime.bigint();
  await run('y += 1');
  if (i >= 100) times.push(Number(process.hrtime.bigint() - t0) / 1000);
}
const last = await run('y');
if (last.execution.results[0].text !== String(n + 100)) throw new Error(`y = ${last.execution.results[0].text}`);
times.sort((a, b) => a - b);
const pct = (p) => Math.round(times[Math.floor(((times.length - 1) * p) / 100)]);
console.log(JSON.stringify({ p50: pct(50), p90: pct(90), p99: pct(99) }));
socket.close();
