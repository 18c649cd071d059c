import type { Duplex } from 'node:stream';

/**
 * Reads exactly `n` bytes from a paused or fresh stream (socket or pool stream); bytes past `n` are put back for the next reader.
 * Rejects when the socket ends, fails or stays silent for `timeout` ms.
 */
export function readExactly(socket: Duplex, n: number, timeout: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let got = 0;
    const timer = setTimeout(() => finish(new Error(`no ${n}-byte header within ${timeout}ms`)), timeout);
    function finish(error?: Error, value?: Buffer) {
      clearTimeout(timer);
      socket.removeListener('data', onData);
      socket.removeListener('end', onEnd);
      socket.removeListener('close', onEnd);
      socket.removeListener('error', onError);
      socket.pause();
      if (error) reject(error);
      else resolve(value as Buffer);
    }
    function onData(chunk: Buffer) {
      chunks.push(chunk);
      got += chunk.length;
      if (got < n) return;
      const all = chunks.length === 1 ? chunk : Buffer.concat(chunks);
      finish(undefined, all.subarray(0, n));
      if (all.length > n) socket.unshift(all.subarray(n));
    }
    const onEnd = () => finish(new Error(`connection closed after ${got} of ${n} header bytes`));
    const onError = (err: Error) => finish(err);
    socket.on('data', onData);
    socket.once('end', onEnd);
    socket.once('close', onEnd);
    socket.once('error', onError);
    socket.resume();
  });
}
