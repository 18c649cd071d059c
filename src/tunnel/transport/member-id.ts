import type { PoolStream } from '../pool.js';
import { readExactly } from '../read-exactly.js';
import type { DialedMember } from './types.js';

/**
 * The client side of every transport's member dial ends the same way: the server's first 4 bytes are the member's id.
 * A member whose id does not arrive within `timeout` is destroyed, not left open.
 */
export async function readMemberId(stream: PoolStream, timeout: number, fingerprint?: string): Promise<DialedMember> {
  try {
    const id = (await readExactly(stream, 4, timeout)).toString('hex');
    return { id, stream, ...(fingerprint ? { fingerprint } : {}) };
  } catch (err) {
    stream.destroy();
    throw err;
  }
}
