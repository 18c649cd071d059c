import type { Socket } from 'node:net';
import type { BlockedProtocol } from '../config/params.js';

/** How long a first-bytes prefix that could still be a blocked protocol ("GE", a lone 0x05) waits for more. */
export const SNIFF_AMBIGUITY_TIMEOUT = 500;

export type SniffVerdict = { kind: 'pass' } | { kind: 'block'; protocol: BlockedProtocol } | { kind: 'more' };

// HTTP request methods up to 7 letters (RFC 9110 plus PATCH and the HTTP/2 preface "PRI"), matched with their space.
const HTTP_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH', 'PRI'].map((m) =>
  Buffer.from(`${m} `, 'latin1'),
);

function httpVerdict(head: Buffer): 'match' | 'prefix' | 'no' {
  let prefix = false;
  for (const method of HTTP_METHODS) {
    const n = Math.min(head.length, method.length);
    if (head.compare(method, 0, n, 0, n) !== 0) continue;
    if (n === method.length) return 'match';
    prefix = true;
  }
  return prefix ? 'prefix' : 'no';
}

/**
 * Classifies the first bytes a user sent. `more` means the bytes so far could still be a blocked protocol.
 * SOCKS4 is 0x04 then command 1|2, SOCKS5 is 0x05 then 1..255 auth methods, TLS is a handshake record (0x16), HTTP is
 * a request method followed by a space.
 */
export function classifyFirstBytes(head: Buffer, blocked: ReadonlySet<BlockedProtocol>): SniffVerdict {
  if (head.length === 0) return { kind: 'more' };
  const first = head[0] as number;
  let undecided = false;
  if (blocked.has('tls') && first === 0x16) return { kind: 'block', protocol: 'tls' };
  if (blocked.has('socks') && (first === 0x04 || first === 0x05)) {
    if (head.length < 2) undecided = true;
    else {
      const second = head[1] as number;
      if ((first === 0x04 && (second === 0x01 || second === 0x02)) || (first === 0x05 && second >= 1)) {
        return { kind: 'block', protocol: 'socks' };
      }
    }
  }
  if (blocked.has('http')) {
    const v = httpVerdict(head);
    if (v === 'match') return { kind: 'block', protocol: 'http' };
    if (v === 'prefix') undecided = true;
  }
  return undecided ? { kind: 'more' } : { kind: 'pass' };
}

export interface SniffResult {
  verdict: SniffVerdict;
  /** The bytes read so far, to be sent on when passing. */
  head: Buffer;
  /** The user half-closed (or went) while being sniffed: its 'end' has already been consumed. */
  ended: boolean;
}

/**
 * Reads the user's first bytes until they are classified. Resolves with the verdict and the bytes read (to be sent
 * on when passing). Waits only for the user: the target → user direction is not held up meanwhile, so
 * server-speaks-first protocols are never stalled. A prefix that stays ambiguous for `ambiguityTimeout` ms passes.
 */
export function sniffFirstBytes(
  socket: Socket,
  blocked: ReadonlySet<BlockedProtocol>,
  ambiguityTimeout: number,
): Promise<SniffResult> {
  return new Promise((resolve) => {
    let head: Buffer = Buffer.alloc(0);
    let timer: NodeJS.Timeout | undefined;
    const finish = (verdict: SniffVerdict, ended = false) => {
      if (timer) clearTimeout(timer);
      socket.removeListener('data', onData);
      socket.removeListener('end', onEnd);
      socket.removeListener('close', onEnd);
      socket.pause();
      resolve({ verdict, head, ended });
    };
    const onData = (chunk: Buffer) => {
      head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
      const verdict = classifyFirstBytes(head, blocked);
      if (verdict.kind !== 'more') finish(verdict);
      else timer ??= setTimeout(() => finish({ kind: 'pass' }), ambiguityTimeout);
    };
    // A user that half-closes (or goes) before deciding passes what it sent; the relay sees the end itself.
    const onEnd = () => finish({ kind: 'pass' }, true);
    socket.on('data', onData);
    socket.once('end', onEnd);
    socket.once('close', onEnd);
    socket.resume();
  });
}
