import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { isIP } from 'node:net';

// Room for bursts of datagrams between event-loop turns (the kernel caps it at net.core.rmem_max).
const SOCKET_BUFFER = 4 * 1024 * 1024;

function enlargeBuffers(socket: UdpSocket): void {
  try {
    socket.setRecvBufferSize(SOCKET_BUFFER);
    socket.setSendBufferSize(SOCKET_BUFFER);
  } catch {
    // Best effort: a smaller buffer only means earlier drops under bursts.
  }
}

/** Binds a UDP socket; host '' = all interfaces (dual-stack where IPv6 exists). */
export async function bindUdp(host: string, port: number): Promise<UdpSocket> {
  const attempt = (type: 'udp4' | 'udp6', address: string, ipv6Only: boolean) =>
    new Promise<UdpSocket>((resolve, reject) => {
      const socket = createSocket({ type, ipv6Only, reuseAddr: false });
      socket.once('error', reject);
      socket.bind({ port, address }, () => {
        socket.removeListener('error', reject);
        enlargeBuffers(socket);
        resolve(socket);
      });
    });
  if (host === '') {
    try {
      return await attempt('udp6', '::', false);
    } catch {
      return attempt('udp4', '0.0.0.0', false);
    }
  }
  return attempt(isIP(host) === 6 ? 'udp6' : 'udp4', host, isIP(host) === 6);
}

/** A UDP socket connected to `address:port`, bound to `localAddress` when given. */
export function connectUdp(address: string, family: 4 | 6, port: number, localAddress: string): Promise<UdpSocket> {
  return new Promise((resolve, reject) => {
    const socket = createSocket(family === 6 ? 'udp6' : 'udp4');
    const fail = (err: Error) => {
      socket.close();
      reject(err);
    };
    socket.once('error', fail);
    const doConnect = () =>
      socket.connect(port, address, () => {
        socket.removeListener('error', fail);
        enlargeBuffers(socket);
        resolve(socket);
      });
    if (localAddress !== 'auto') socket.bind({ address: localAddress, port: 0 }, doConnect);
    else doConnect();
  });
}
