import { connect, isIP } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from '../common/logger.js';
import type { MessageOf, PortRule } from '../hub/protocol.js';
import { DatagramStream } from '../tunnel/datagram-stream.js';
import { Relay } from '../tunnel/relay.js';
import type { Flow } from '../tunnel/traffic.js';
import { connectUdp } from '../tunnel/udp-socket.js';

const DIAL_TIMEOUT = 10_000;
const UDP_IDLE = 60_000;

export interface StreamCounters {
  tcpStreams: number;
  udpStreams: number;
  /** Streams of HTTP/HTTPS sites (a connection, with all its keep-alive requests, is one). */
  httpStreams: number;
  /** From the hub (its clients) to this connector's destinations, and back. */
  bytesIn: number;
  bytesOut: number;
}

/**
 * A stream the hub opened towards this connector (a connection to one of our allocated ports, or another tunnel's
 * port mapping to it): dial the port rule's destination and relay, or bridge datagrams for a UDP mapping.
 */
export function serveStream(
  open: MessageOf<'open'>,
  socket: Duplex,
  rule: PortRule | undefined,
  counters: StreamCounters,
  logger: Logger,
): void {
  socket.on('error', () => {});
  if (!rule || rule.destination === '' || rule.dstPort === 0) {
    logger.warn(`stream for port ${open.port}: no forwarding rule here; closed`);
    socket.destroy();
    return;
  }
  if (open.transport === 'udp') {
    void bridgeUdp(socket, rule, counters, logger);
    return;
  }
  const target = connect({ host: rule.destination, port: rule.dstPort, allowHalfOpen: true });
  const timer = setTimeout(() => target.destroy(new Error(`no answer within ${DIAL_TIMEOUT}ms`)), DIAL_TIMEOUT);
  const onDialError = (err: Error) => {
    clearTimeout(timer);
    logger.warn(`port ${open.port} -> ${rule.destination}:${rule.dstPort}: ${err.message}`);
    socket.destroy();
  };
  target.once('error', onDialError);
  // The hub side may give up (its client left) while we are still dialing.
  const onGone = () => target.destroy();
  socket.once('close', onGone);
  target.once('connect', () => {
    socket.removeListener('close', onGone);
    clearTimeout(timer);
    // From here on the relay owns both sockets and their errors (a reset at the end of a session is no news).
    target.removeListener('error', onDialError);
    counters.tcpStreams++;
    const down: Flow = {
      bucket: undefined,
      count: (n) => {
        counters.bytesOut += n;
      },
    };
    const up: Flow = {
      bucket: undefined,
      count: (n) => {
        counters.bytesIn += n;
      },
    };
    const relay = new Relay(socket, target, { up, down, idleTimeout: 0 });
    relay.startUp();
    relay.startDown();
  });
}

async function bridgeUdp(socket: Duplex, rule: PortRule, counters: StreamCounters, logger: Logger): Promise<void> {
  let udp: Awaited<ReturnType<typeof connectUdp>>;
  try {
    udp = await connectUdp(rule.destination, isIP(rule.destination) === 6 ? 6 : 4, rule.dstPort, 'auto');
  } catch (err) {
    logger.warn(`UDP to ${rule.destination}:${rule.dstPort}: ${(err as Error).message}`);
    socket.destroy();
    return;
  }
  // The stream stays paused until the UDP socket is ready, so no datagram that arrives meanwhile is lost.
  const datagrams = new DatagramStream(socket, UDP_IDLE);
  counters.udpStreams++;
  udp.on('message', (d) => {
    counters.bytesOut += d.length;
    datagrams.send(d);
  });
  udp.on('error', (err) => logger.debug(`UDP ${rule.destination}:${rule.dstPort}: ${err.message}`));
  datagrams.onDatagram = (d) => {
    counters.bytesIn += d.length;
    udp.send(d);
  };
  if (socket.destroyed) udp.close();
  else socket.once('close', () => udp.close());
}
