// What the bench scripts share: a socket.io-client connection to the
// server named by SDBX_URL and SDBX_API_KEY, and acked calls.
import { io } from 'socket.io-client';

// connect resolves with a socket once it is connected (websocket only, no
// reconnection: a dropped connection fails the run).
export async function connect() {
  const socket = io(process.env.SDBX_URL, {
    auth: { apiKey: process.env.SDBX_API_KEY },
    transports: ['websocket'],
    reconnection: false,
  });
  await new Promise((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('connect_error', reject);
  });
  return socket;
}

// call emits event and resolves with the ack's data; a refusal (or no ack
// within timeoutMs) rejects, naming the event.
export async function call(socket, event, payload, timeoutMs) {
  const ack = await socket.timeout(timeoutMs).emitWithAck(event, payload);
  if (!ack.ok) throw new Error(`${event}: ${JSON.stringify(ack.error)}`);
  return ack.data;
}
