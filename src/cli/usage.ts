export const USAGE = `porthole — self-hosted tunnels (NodePass-compatible instances and master, hub and connector)

Usage:
  porthole "client://[key@]tunnel-host:port/target-host:port[,target2:port...]?params"
  porthole "server://[key@]tunnel-host:port/target-host:port?params"
  porthole "master://host:port/prefix?log=info&tls=0"
  porthole hub [--config hub.json] [--tunnel-listen H:P] [--admin-listen H:P] [--port-range B-E] [--state-dir D]
               [--http-listen H:P|off] [--https-listen H:P|off]   (sites by Host / SNI; default :80 / :443)
               [--ws-listen H:P]   (plain-HTTP WebSocket endpoint /porthole/ws, for a TLS-terminating proxy)
               [--token T ...] [--token-domains T=*.example.com,app.example.org]   (registration tokens; the
               domains a token's tunnels may claim)
  porthole connector configure|start|info|route ...   (porthole connector --help)
  porthole demo          run a demo forwarder (127.0.0.1:18080 -> a small local web page)
  porthole --help | --version

Master (NodePass-compatible REST + SSE API at {prefix}/v1, instances run as child processes):
  porthole "master://127.0.0.1:9090/api?log=info"          tls=1 self-signed | tls=2&crt=PATH&key=PATH
  State: PORTHOLE_STATE_DIR (default ./data). The API key is printed at start (header X-API-Key).

Single-end forwarder (client mode 1): listen on the tunnel address (TCP and UDP), forward to the targets:
  porthole "client://127.0.0.1:1080/10.0.0.5:80,10.0.0.6:80?mode=1&lbs=2"

Parameters (absent = default; an invalid value is an error):
  log=info      none | debug | info | warn | error | event (event prints the CHECK_POINT stats lines)
  tls=0         0 plain | 1 in-memory self-signed certificate | 2 crt=PATH&key=PATH
  mode=0        client: 0 auto | 1 single-end | 2 dual-end;  server: 0 auto | 1 reverse | 2 forward
  lbs=0         0 round-robin + failover | 1 lowest latency | 2 primary/backup
  dial=auto     source IP for outbound dials          dns=5m   DNS cache TTL (0 = no cache)
  read=0        close a session idle this long         rate=0   Mbps per direction (0 = unlimited)
  slot=65536    concurrent sessions (0 = unlimited)    proxy=0  1 = send a PROXY v1 header to the target
  block=0       refuse 1 SOCKS, 2 HTTP, 3 TLS (digits combine: block=23)
  notcp=0       1 = no TCP                             noudp=0  1 = no UDP
  min=64 max=1024 sni=HOST                             (dual-end tunnels)
  type=0        server pool: 0 TCP | 2 WebSocket | 3 HTTP/2 (1 QUIC: refused at start)

Environment: NP_TCP_DIAL_TIMEOUT, NP_UDP_READ_TIMEOUT, NP_REPORT_INTERVAL, NP_SHUTDOWN_TIMEOUT, ... (NodePass's
names and defaults). SIGINT/SIGTERM stop cleanly.
`;
