/**
 * The query parameters of `server://` and `client://` URLs as a person reads them: default, accepted values and a
 * one-line explanation. Browser-safe (no node: imports) because the dashboard's URL form is built from it; a unit
 * test keeps the defaults and roles equal to PARAMS (params.ts), which stays the grammar's single authority.
 */

export type TunnelRole = 'server' | 'client';

export interface ParamChoice {
  value: string;
  label: string;
}

export interface ParamDoc {
  name: string;
  /** The roles where it has an effect (the grammar accepts every tunnel parameter on both). */
  roles: readonly TunnelRole[];
  /** The value used when the parameter is absent; '' when it depends on the URL (shown in `defaultNote`). */
  default: string;
  defaultNote?: string;
  kind: 'choice' | 'integer' | 'duration' | 'text';
  choices?: readonly ParamChoice[];
  /** Choices whose meaning depends on the role (mode). */
  roleChoices?: Readonly<Record<TunnelRole, readonly ParamChoice[]>>;
  /** The form shows it under "dual-end tunnel" (it has no effect on a single-end forwarder). */
  dualEnd?: boolean;
  summary: string;
}

const BOTH: readonly TunnelRole[] = ['server', 'client'];
const SERVER: readonly TunnelRole[] = ['server'];
const CLIENT: readonly TunnelRole[] = ['client'];

export const PARAM_DOCS: readonly ParamDoc[] = [
  {
    name: 'mode',
    roles: BOTH,
    default: '0',
    kind: 'choice',
    choices: [
      { value: '0', label: '0' },
      { value: '1', label: '1' },
      { value: '2', label: '2' },
    ],
    roleChoices: {
      client: [
        { value: '0', label: '0 · auto (single-end if the address can be bound)' },
        { value: '1', label: '1 · single-end forwarder' },
        { value: '2', label: '2 · dual-end (dial a server)' },
      ],
      server: [
        { value: '0', label: '0 · auto' },
        { value: '1', label: '1 · reverse (users connect to the server)' },
        { value: '2', label: '2 · forward (users connect to the client)' },
      ],
    },
    summary: 'Client: 0 single-end when the tunnel address can be bound, else dual-end. Server: who listens for users.',
  },
  {
    name: 'log',
    roles: BOTH,
    default: 'info',
    defaultNote: "the master's log level",
    kind: 'choice',
    choices: ['none', 'debug', 'info', 'warn', 'error', 'event'].map((v) => ({ value: v, label: v })),
    summary: 'Log level of the instance (event and below print the CHECK_POINT stats lines).',
  },
  {
    name: 'tls',
    roles: BOTH,
    default: '0',
    kind: 'choice',
    choices: [
      { value: '0', label: '0 · plain' },
      { value: '1', label: '1 · self-signed, in memory' },
      { value: '2', label: '2 · certificate files (crt, key)' },
    ],
    summary: 'TLS on the tunnel (server) or on the listener of a single-end forwarder.',
  },
  { name: 'crt', roles: BOTH, default: '', kind: 'text', summary: 'PEM certificate file for tls=2.' },
  { name: 'key', roles: BOTH, default: '', kind: 'text', summary: 'PEM private key file for tls=2.' },
  {
    name: 'lbs',
    roles: BOTH,
    default: '0',
    kind: 'choice',
    choices: [
      { value: '0', label: '0 · round-robin with failover' },
      { value: '1', label: '1 · fastest connect time first' },
      { value: '2', label: '2 · primary / backup' },
    ],
    summary: 'How a target is picked when several are given.',
  },
  {
    name: 'dial',
    roles: BOTH,
    default: 'auto',
    kind: 'text',
    summary: 'Local source IP for outbound dials (auto lets the system choose).',
  },
  {
    name: 'dns',
    roles: BOTH,
    default: '5m',
    kind: 'duration',
    summary: 'DNS cache lifetime (Go duration such as 30s, 5m; 0 disables the cache).',
  },
  {
    name: 'read',
    roles: BOTH,
    default: '0',
    kind: 'duration',
    summary: 'Close a session after this long without traffic (0 = never).',
  },
  {
    name: 'rate',
    roles: BOTH,
    default: '0',
    kind: 'integer',
    summary: 'Bandwidth limit in Mbps per direction for the whole instance (0 = unlimited).',
  },
  {
    name: 'slot',
    roles: BOTH,
    default: '65536',
    kind: 'integer',
    summary: 'Concurrent TCP + UDP sessions (0 = unlimited).',
  },
  {
    name: 'proxy',
    roles: BOTH,
    default: '0',
    kind: 'choice',
    choices: [
      { value: '0', label: '0 · off' },
      { value: '1', label: '1 · send PROXY v1' },
    ],
    summary: 'Send a PROXY protocol v1 header to the target so it sees the real client address.',
  },
  {
    name: 'block',
    roles: BOTH,
    default: '0',
    kind: 'text',
    summary: 'Refuse protocols by their first bytes: digits 1 SOCKS, 2 HTTP, 3 TLS (e.g. 12); 0 = none.',
  },
  {
    name: 'notcp',
    roles: BOTH,
    default: '0',
    kind: 'choice',
    choices: [
      { value: '0', label: '0 · TCP on' },
      { value: '1', label: '1 · TCP off' },
    ],
    summary: 'Disable TCP forwarding.',
  },
  {
    name: 'noudp',
    roles: BOTH,
    default: '0',
    kind: 'choice',
    choices: [
      { value: '0', label: '0 · UDP on' },
      { value: '1', label: '1 · UDP off' },
    ],
    summary: 'Disable UDP forwarding.',
  },
  {
    name: 'min',
    roles: CLIENT,
    default: '64',
    kind: 'integer',
    dualEnd: true,
    summary: 'Minimum number of pre-dialed pool connections.',
  },
  {
    name: 'max',
    roles: SERVER,
    default: '1024',
    kind: 'integer',
    dualEnd: true,
    summary: 'Maximum number of pool connections.',
  },
  {
    name: 'type',
    roles: SERVER,
    default: '0',
    kind: 'choice',
    dualEnd: true,
    choices: [
      { value: '0', label: '0 · TCP' },
      { value: '1', label: '1 · QUIC' },
      { value: '2', label: '2 · WebSocket' },
      { value: '3', label: '3 · HTTP/2' },
    ],
    summary: 'Transport of the connection pool between server and client.',
  },
  {
    name: 'sni',
    roles: CLIENT,
    default: '',
    defaultNote: 'the tunnel host name, or none for an IP',
    kind: 'text',
    dualEnd: true,
    summary: 'TLS server name the client sends to the server (none = no SNI).',
  },
];

export function paramDoc(name: string): ParamDoc | undefined {
  return PARAM_DOCS.find((p) => p.name === name);
}
