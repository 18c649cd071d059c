/** FNV-1a 32-bit hash of a string's UTF-8 bytes. */
export function fnv1a32(text: string): number {
  let hash = 0x811c9dc5;
  for (const byte of Buffer.from(text, 'utf8')) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash >>> 0;
}

/**
 * The tunnel key: the URL's username, else hex FNV-1a-32 of the tunnel port as a decimal string
 * (NodePass: port 10101 gives "e68be2b4").
 */
export function deriveTunnelKey(username: string, portText: string): string {
  if (username !== '') return username;
  return fnv1a32(portText).toString(16).padStart(8, '0');
}
