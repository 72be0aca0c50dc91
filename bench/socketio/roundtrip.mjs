// Times `x += 1` code:run round trips through socket.io-client against a
// running sdbx server. Env: SDBX_URL, SDBX_API_KEY, SDBX_SANDBOX, N.
// Prints the p50, p90 and p99 in microseconds as JSON.
import { io } from 'socket.io-client';

const n = Number(process.env.N || 2000);
const socket = io(process.env.SDBX_URL, {
  auth: { apiKey: process.env.SDBX_API_KEY },
  transports: ['websocket'],
  reconnection: false,
});
await new Promise((resolve, reject) => {
  socket.once('connect', resolve);
  socket.once('connect_error', reject);
});
const run = async (code) => {
  const ack = await socket.timeout(30000).emitWithAck('code:run', { sandboxId: process.env.SDBX_SANDBOX, code });
  if (!ack.ok) throw new Error(JSON.stringify(ack.error));
  return ack.data;
};
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
