import { isIPv4 } from 'node:net';

export interface AddressPort {
  address: string;
  port: number;
}

const MAPPED_V4 = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i;

function unmapped(address: string): string {
  const m = MAPPED_V4.exec(address);
  return m ? (m[1] as string) : address;
}

/**
 * PROXY protocol v1 header. As NodePass: TCP4 when both addresses are IPv4, else TCP6 (an IPv4 address among IPv6
 * is written IPv4-mapped).
 */
export function encodeProxyV1(source: AddressPort, destination: AddressPort): Buffer {
  const src = unmapped(source.address);
  const dst = unmapped(destination.address);
  if (isIPv4(src) && isIPv4(dst)) {
    return Buffer.from(`PROXY TCP4 ${src} ${dst} ${source.port} ${destination.port}\r\n`, 'latin1');
  }
  const v6 = (a: string) => (isIPv4(a) ? `::ffff:${a}` : a);
  return Buffer.from(`PROXY TCP6 ${v6(src)} ${v6(dst)} ${source.port} ${destination.port}\r\n`, 'latin1');
}
