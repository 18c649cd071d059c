/**
 * Reads the server name (SNI) from the first TLS record of a connection, without terminating TLS: the hub routes the
 * still-encrypted stream by it. A ClientHello that spans several records is not supported (clients put SNI in the
 * first record; a 16 KiB record holds any real ClientHello).
 */
export type SniResult = { state: 'incomplete' } | { state: 'invalid'; why: string } | { state: 'done'; name?: string };

const HANDSHAKE = 0x16;
const CLIENT_HELLO = 0x01;
const SERVER_NAME = 0x0000;
/** A TLS record's plaintext limit plus its header. */
export const MAX_HELLO = 16_384 + 5;

export function readSni(data: Buffer): SniResult {
  if (data.length < 5) return { state: 'incomplete' };
  if (data[0] !== HANDSHAKE) return { state: 'invalid', why: 'not a TLS handshake' };
  const recordLength = data.readUInt16BE(3);
  if (recordLength > 16_384) return { state: 'invalid', why: 'TLS record too long' };
  if (data.length < 5 + recordLength) return { state: 'incomplete' };
  const hello = data.subarray(5, 5 + recordLength);
  try {
    if (hello[0] !== CLIENT_HELLO) return { state: 'invalid', why: 'not a ClientHello' };
    const helloLength = hello.readUIntBE(1, 3);
    if (helloLength + 4 > hello.length) return { state: 'invalid', why: 'ClientHello spans several records' };
    let at = 4 + 2 + 32; // type+length, client version, random
    at += 1 + (hello[at] as number); // session id
    at += 2 + hello.readUInt16BE(at); // cipher suites
    at += 1 + (hello[at] as number); // compression methods
    if (at >= 4 + helloLength) return { state: 'done' }; // no extensions
    const end = at + 2 + hello.readUInt16BE(at);
    at += 2;
    while (at + 4 <= end) {
      const type = hello.readUInt16BE(at);
      const length = hello.readUInt16BE(at + 2);
      at += 4;
      if (type === SERVER_NAME) {
        let p = at + 2;
        const listEnd = at + 2 + hello.readUInt16BE(at);
        while (p + 3 <= listEnd) {
          const nameType = hello[p] as number;
          const nameLength = hello.readUInt16BE(p + 1);
          if (nameType === 0) return { state: 'done', name: hello.toString('ascii', p + 3, p + 3 + nameLength) };
          p += 3 + nameLength;
        }
        return { state: 'done' };
      }
      at += length;
    }
    return { state: 'done' };
  } catch {
    return { state: 'invalid', why: 'malformed ClientHello' };
  }
}
