import { createHmac, timingSafeEqual } from 'node:crypto';

/** The Bearer token of the handshake: hex HMAC-SHA256 keyed with the tunnel key over the empty message. */
export function handshakeToken(key: string): string {
  return createHmac('sha256', key).update('').digest('hex');
}

/** Constant-time check of an `Authorization` header value against the key's token. */
export function verifyAuthorization(header: string | undefined, key: string): boolean {
  const expected = Buffer.from(`Bearer ${handshakeToken(key)}`, 'latin1');
  const given = Buffer.from(header ?? '', 'latin1');
  return given.length === expected.length && timingSafeEqual(given, expected);
}

/** The server's handshake reply: what the client adopts. */
export interface HandshakeReply {
  flow: '+' | '-';
  max: number;
  tls: '0' | '1' | '2';
  type: '0' | '1' | '2' | '3';
}

/** The reply body, byte for byte as NodePass's Go JSON encoder writes it (keys sorted, trailing newline). */
export function encodeHandshakeReply(reply: HandshakeReply): string {
  return `${JSON.stringify({ flow: reply.flow, max: reply.max, tls: reply.tls, type: reply.type })}\n`;
}

export class HandshakeReplyError extends Error {
  override readonly name = 'HandshakeReplyError';
}

export function decodeHandshakeReply(body: string): HandshakeReply {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(body) as Record<string, unknown>;
  } catch {
    throw new HandshakeReplyError('handshake reply is not JSON');
  }
  const max = Number(o.max);
  if (
    (o.flow !== '+' && o.flow !== '-') ||
    !Number.isSafeInteger(max) ||
    max < 1 ||
    !['0', '1', '2'].includes(String(o.tls)) ||
    !['0', '1', '2', '3'].includes(String(o.type))
  ) {
    throw new HandshakeReplyError(`handshake reply has unexpected fields: ${body.slice(0, 200)}`);
  }
  return {
    flow: o.flow,
    max,
    tls: String(o.tls) as HandshakeReply['tls'],
    type: String(o.type) as HandshakeReply['type'],
  };
}
