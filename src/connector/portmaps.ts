import type { RemoteInfo, Socket as UdpSocket } from 'node:dgram';
import { createServer, type Server, type Socket } from 'node:net';
import type { Logger } from '../common/logger.js';
import type { PortMap } from '../hub/rules.js';
import { DatagramStream } from '../tunnel/datagram-stream.js';
import { Relay } from '../tunnel/relay.js';
import type { Flow } from '../tunnel/traffic.js';
import { bindUdp } from '../tunnel/udp-socket.js';
import type { HubSession } from './session.js';

/** Port mappings listen on loopback only: they expose a remote service to programs on this host. */
export const PORTMAP_BIND = '127.0.0.1';
const UDP_IDLE = 60_000;
const MAX_UDP_SESSIONS = 1024;

interface OpenMap {
  rule: PortMap;
  close(): void;
}

const NO_COUNT: Flow = { bucket: undefined, count: () => {} };

/**
 * The local listeners of the port mappings: each connection (or UDP source) becomes an outbound stream through the
 * hub to `dstPort` (another tunnel's allocated port when `destination` is empty, else the named outside host).
 */
export class PortmapListeners {
  private readonly open = new Map<number, OpenMap>();

  constructor(
    private readonly session: () => HubSession | undefined,
    private readonly logger: Logger,
  ) {}

  has(port: number): boolean {
    return this.open.has(port);
  }

  get size(): number {
    return this.open.size;
  }

  /** Binds the listener of `rule`; rejects (and leaves nothing behind) when the local port cannot be bound. */
  async start(rule: PortMap): Promise<void> {
    this.stop(rule.port);
    const entry = rule.transport === 'udp' ? await this.startUdp(rule) : await this.startTcp(rule);
    this.open.set(rule.port, entry);
    this.session()?.enableOutbound();
    this.logger.info(
      `portmap ${PORTMAP_BIND}:${rule.port}/${rule.transport} -> ${rule.destination || 'hub port'} ${rule.dstPort}`,
    );
  }

  stop(port: number): void {
    const entry = this.open.get(port);
    if (!entry) return;
    this.open.delete(port);
    entry.close();
  }

  stopAll(): void {
    for (const port of [...this.open.keys()]) this.stop(port);
  }

  private async startTcp(rule: PortMap): Promise<OpenMap> {
    const connections = new Set<Socket>();
    const server: Server = createServer({ allowHalfOpen: true, noDelay: true }, (local) => {
      connections.add(local);
      local.once('close', () => connections.delete(local));
      local.on('error', () => {});
      const session = this.session();
      if (!session || session.isClosed) {
        local.destroy();
        return;
      }
      session.connectOutbound({ transport: 'tcp', destination: rule.destination, dstPort: rule.dstPort }).then(
        (stream) => {
          const relay = new Relay(local, stream, { up: NO_COUNT, down: NO_COUNT, idleTimeout: 0 });
          relay.startUp();
          relay.startDown();
        },
        (err: Error) => {
          this.logger.warn(`portmap ${rule.port}: ${err.message}`);
          local.destroy();
        },
      );
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ port: rule.port, host: PORTMAP_BIND, exclusive: true }, () => {
        server.removeListener('error', reject);
        resolve();
      });
    });
    server.on('error', (err) => this.logger.error(`portmap ${rule.port}: ${err.message}`));
    return {
      rule,
      close: () => {
        server.close();
        for (const c of connections) c.destroy();
      },
    };
  }

  private async startUdp(rule: PortMap): Promise<OpenMap> {
    const listener: UdpSocket = await bindUdp(PORTMAP_BIND, rule.port);
    const sessions = new Map<string, { stream: DatagramStream | undefined; pending: Buffer[] }>();
    listener.on('message', (msg: Buffer, rinfo: RemoteInfo) => {
      const key = `${rinfo.address}|${rinfo.port}`;
      let entry = sessions.get(key);
      if (entry === undefined) {
        const session = this.session();
        if (!session || session.isClosed || sessions.size >= MAX_UDP_SESSIONS) return;
        const created: { stream: DatagramStream | undefined; pending: Buffer[] } = {
          stream: undefined,
          pending: [msg],
        };
        entry = created;
        sessions.set(key, created);
        session.connectOutbound({ transport: 'udp', destination: rule.destination, dstPort: rule.dstPort }).then(
          (socket) => {
            const stream = new DatagramStream(socket, UDP_IDLE);
            created.stream = stream;
            stream.onDatagram = (reply) => listener.send(reply, rinfo.port, rinfo.address);
            socket.once('close', () => {
              if (sessions.get(key) === created) sessions.delete(key);
            });
            for (const m of created.pending) stream.send(m);
            created.pending = [];
          },
          (err: Error) => {
            this.logger.warn(`portmap ${rule.port}/udp: ${err.message}`);
            sessions.delete(key);
          },
        );
        return;
      }
      if (entry.stream) entry.stream.send(msg);
      else if (entry.pending.length < 64) entry.pending.push(msg);
    });
    listener.on('error', (err) => this.logger.warn(`portmap ${rule.port}/udp: ${err.message}`));
    return {
      rule,
      close: () => {
        listener.close();
        for (const s of sessions.values()) s.stream?.close();
      },
    };
  }
}
