/** Directory watches: file:watch, its file:event events, file:unwatch. */
import type { SandboxSDKError } from './errors.js';
import type { Transport } from './transport.js';
import type { DirectoryWatch, WatchDirectoryOptions, WatchEvent } from './types.js';

const WATCH_TYPES = new Set(['created', 'modified', 'deleted', 'renamed', 'overflow']);

/** toWatchEvent converts a file:event payload. */
function toWatchEvent(rec: Record<string, unknown>): WatchEvent {
  const type = typeof rec.type === 'string' && WATCH_TYPES.has(rec.type) ? rec.type : 'modified';
  const ev: WatchEvent = {
    type: type as WatchEvent['type'],
    path: typeof rec.path === 'string' ? rec.path : '',
    isDir: rec.isDir === true,
    timestamp: typeof rec.timestamp === 'number' ? rec.timestamp : Date.now(),
  };
  if (typeof rec.oldPath === 'string' && rec.oldPath !== '') ev.oldPath = rec.oldPath;
  return ev;
}

/**
 * startWatch asks the server for a watch and resolves once it is in
 * place. The watchId is chosen here, before the request, so that no early
 * event is missed.
 */
export async function startWatch(
  transport: Transport,
  timeoutMs: number,
  sandboxId: string,
  path: string,
  onEvent: (ev: WatchEvent) => void,
  opts: WatchDirectoryOptions,
): Promise<DirectoryWatch> {
  const watchId = transport.newId('w-');
  let ended = false;
  let endedResolve: (err?: SandboxSDKError) => void = () => {};
  const endedPromise = new Promise<SandboxSDKError | undefined>((resolve) => {
    endedResolve = resolve;
  });
  const end = (err?: SandboxSDKError): void => {
    if (ended) return;
    ended = true;
    transport.removeWatch(watchId);
    endedResolve(err);
    opts.onEnd?.(err);
  };
  transport.addWatch(watchId, { onEvent: (rec) => onEvent(toWatchEvent(rec)), onEnd: end });
  try {
    await transport.request('file:watch', { sandboxId, path, recursive: opts.recursive === true, watchId }, { timeoutMs });
  } catch (e) {
    ended = true;
    transport.removeWatch(watchId);
    throw e;
  }
  return {
    watchId,
    ended: endedPromise,
    async stop(): Promise<void> {
      if (ended) return;
      ended = true;
      transport.removeWatch(watchId);
      endedResolve(undefined);
      try {
        await transport.request('file:unwatch', { watchId }, { timeoutMs });
      } catch {
        // Gone already (the connection or the watch ended): stopped either way.
      }
    },
  };
}
