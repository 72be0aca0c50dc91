/**
 * Chunked file transfers over Socket.IO (file:upload:* and
 * file:download:*): content travels as binary attachments in chunks, a
 * few in flight at once, so memory stays bounded whatever the file's size.
 */
import { Readable } from 'node:stream';
import { SandboxSDKError } from './errors.js';
import type { Transport } from './transport.js';
import type { FileEntry } from './types.js';

/**
 * Bytes per chunk (well under the server's 16 MiB Socket.IO message): 4 KiB
 * short of 4 MiB. The server reads a websocket message into a buffer that
 * doubles from 512 bytes until the message fits with 512 bytes to spare,
 * so a message of exactly 4 MiB would take one more doubling (an 8 MiB
 * buffer zeroed and 4 MiB copied per chunk: a fifth of the server's CPU).
 */
export const CHUNK_BYTES = 4 * 1024 * 1024 - 4096;
/** Chunks sent (or pulled) before the first of them is acknowledged. */
const WINDOW = 4;

/**
 * settled marks p as handled (its rejection is still seen where p is
 * awaited), so that a request failing while another is awaited does not
 * count as an unhandled rejection.
 */
function settled<T>(p: Promise<T>): Promise<T> {
  p.catch(() => undefined);
  return p;
}

/** asBytes views a chunk from a stream as a Uint8Array. */
function asBytes(chunk: unknown): Uint8Array {
  if (chunk instanceof Uint8Array) return chunk;
  if (typeof chunk === 'string') return Buffer.from(chunk, 'utf8');
  throw new SandboxSDKError(`upload: the content stream gave a ${typeof chunk}, not bytes`, 'invalid_argument');
}

/**
 * slices yields views of bytes, CHUNK_BYTES each (the last one shorter):
 * no copy, as the caller's buffer stays untouched until the upload ends.
 */
function* slices(bytes: Uint8Array): Generator<Uint8Array> {
  for (let off = 0; off < bytes.byteLength; off += CHUNK_BYTES) {
    yield bytes.subarray(off, Math.min(off + CHUNK_BYTES, bytes.byteLength));
  }
}

/**
 * rechunk yields the content in pieces of exactly CHUNK_BYTES (the last one
 * shorter), copied: a stream's producer may reuse what it gave.
 */
async function* rechunk(source: AsyncIterable<unknown> | Iterable<unknown>): AsyncGenerator<Uint8Array> {
  let buf = Buffer.allocUnsafe(CHUNK_BYTES);
  let n = 0;
  for await (const part of source as AsyncIterable<unknown>) {
    let bytes = asBytes(part);
    while (bytes.byteLength > 0) {
      const take = Math.min(bytes.byteLength, CHUNK_BYTES - n);
      buf.set(bytes.subarray(0, take), n);
      n += take;
      bytes = bytes.subarray(take);
      if (n === CHUNK_BYTES) {
        yield buf;
        buf = Buffer.allocUnsafe(CHUNK_BYTES);
        n = 0;
      }
    }
  }
  if (n > 0) yield buf.subarray(0, n);
}

/**
 * upload streams content into path: file:upload:begin, the chunks (WINDOW
 * of them in flight), file:upload:end, which commits the file atomically.
 * Any failure aborts the upload: the file is left as it was.
 */
export async function upload(
  transport: Transport,
  timeoutMs: number,
  sandboxId: string,
  path: string,
  content: Uint8Array | AsyncIterable<unknown> | Iterable<unknown>,
  opts: { createParents?: boolean },
): Promise<FileEntry> {
  const size = content instanceof Uint8Array ? content.byteLength : undefined;
  const begin: Record<string, unknown> = { sandboxId, path };
  if (size !== undefined) begin.size = size;
  if (opts.createParents) begin.createParents = true;
  const { uploadId } = await transport.request<{ uploadId: string }>('file:upload:begin', begin, { timeoutMs });
  const inflight: Promise<unknown>[] = [];
  try {
    const chunks = content instanceof Uint8Array ? slices(content) : rechunk(content);
    let seq = 0;
    for await (const data of chunks) {
      inflight.push(settled(transport.request('file:upload:chunk', { uploadId, seq: seq++, data }, { timeoutMs })));
      if (inflight.length >= WINDOW) await inflight.shift();
    }
    await Promise.all(inflight.splice(0));
    return await transport.request<FileEntry>('file:upload:end', { uploadId }, { timeoutMs });
  } catch (e) {
    await Promise.allSettled(inflight);
    await transport.request('file:upload:abort', { uploadId }, { timeoutMs }).catch(() => undefined);
    throw e;
  }
}

interface Pulled {
  seq: number;
  data: Uint8Array | ArrayBuffer;
  eof: boolean;
}

/**
 * download opens path for a chunked download and returns its size and a
 * Readable of its content, pulled WINDOW chunks ahead as the stream is
 * read (a stream that is not read pulls nothing more).
 */
export async function download(
  transport: Transport,
  timeoutMs: number,
  sandboxId: string,
  path: string,
): Promise<{ size: number; stream: Readable }> {
  const begin = await transport.request<{ downloadId: string; size: number }>(
    'file:download:begin',
    { sandboxId, path, chunkSize: CHUNK_BYTES },
    { timeoutMs },
  );
  const { downloadId } = begin;
  const end = (): Promise<unknown> =>
    transport.request('file:download:end', { downloadId }, { timeoutMs }).catch(() => undefined);
  async function* chunks(): AsyncGenerator<Uint8Array> {
    const pulls: Promise<Pulled>[] = [];
    const early = new Map<number, Pulled>();
    let wanted = 0;
    let done = false;
    try {
      while (!done) {
        while (pulls.length < WINDOW) {
          pulls.push(settled(transport.request<Pulled>('file:download:chunk', { downloadId }, { timeoutMs })));
        }
        const c = await pulls.shift()!;
        early.set(c.seq, c);
        for (let d = early.get(wanted); d !== undefined && !done; d = early.get(wanted)) {
          early.delete(wanted++);
          const bytes = d.data instanceof ArrayBuffer ? new Uint8Array(d.data) : d.data;
          if (bytes && bytes.byteLength > 0) yield Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
          if (d.eof) done = true;
        }
      }
    } finally {
      await Promise.allSettled(pulls);
      await end();
    }
  }
  return { size: typeof begin.size === 'number' ? begin.size : -1, stream: Readable.from(chunks(), { objectMode: false }) };
}

/** readAll collects a stream into one Buffer. */
export async function readAll(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const part of stream) parts.push(part as Buffer);
  return Buffer.concat(parts);
}
