import { isIP } from 'node:net';
import { type Static, type TSchema, Type } from 'typebox';
import { Value } from 'typebox/value';
import { explainRule } from './firewall.js';
import type { PortMapRule, PortRule } from './protocol.js';

/**
 * The traffic rule types of the reference (Http, Port, PortMap, FwRule), shared by the hub's and the connector's
 * admin APIs: one schema drives validation, types and both OpenAPI documents.
 */
export const FwRuleSchema = Type.Object({
  sequence: Type.Integer({ minimum: 0 }),
  action: Type.Union([Type.Literal('allow'), Type.Literal('drop')]),
  network: Type.String({ minLength: 1, description: 'IPv4/IPv6 CIDR; one host = /32 or /128' }),
});

const PortNumber = Type.Integer({ minimum: 1, maximum: 65535 });
const OptionalPort = Type.Integer({ minimum: 0, maximum: 65535 });

export const PortSchema = Type.Object(
  {
    port: PortNumber,
    destination: Type.Optional(Type.String({ description: 'empty with dstPort 0 = allocated, not forwarded' })),
    dstPort: Type.Optional(OptionalPort),
    firewall: Type.Optional(Type.Array(FwRuleSchema)),
  },
  { additionalProperties: false },
);

/** A port rule as the hub stores it (normalized by checkPort). */
export const StoredPortSchema = Type.Object({
  port: PortNumber,
  destination: Type.String(),
  dstPort: OptionalPort,
  firewall: Type.Optional(Type.Array(FwRuleSchema)),
});

export const PortMapSchema = Type.Object(
  {
    port: Type.Optional(PortNumber),
    listenPort: Type.Optional(PortNumber),
    dstPort: PortNumber,
    destination: Type.Optional(Type.String({ description: 'empty = a port allocated on the hub to some tunnel' })),
    transport: Type.Optional(Type.Union([Type.Literal('tcp'), Type.Literal('udp')])),
    label: Type.Optional(Type.String()),
    http: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);

export const HttpSchema = Type.Object(
  {
    domain: Type.String({ minLength: 1, maxLength: 253 }),
    secure: Type.Optional(Type.Boolean()),
    destination: Type.Optional(Type.String()),
    port: Type.Optional(OptionalPort),
    tls: Type.Optional(OptionalPort),
    upstreamURL: Type.Optional(Type.String()),
    webRoot: Type.Optional(Type.String()),
    useLetsEnc: Type.Optional(Type.Boolean()),
    ca: Type.Optional(Type.String()),
    privateKey: Type.Optional(Type.String()),
    firewall: Type.Optional(Type.Array(FwRuleSchema)),
    redirect: Type.Optional(Type.Boolean()),
    redirectURL: Type.Optional(Type.String()),
    rewriteHost: Type.Optional(Type.String()),
    insecureUpstream: Type.Optional(Type.Boolean()),
    password: Type.Optional(Type.String()),
    basicHttpAuth: Type.Optional(Type.String()),
    requires2FA: Type.Optional(Type.Boolean()),
    authPageOpts: Type.Optional(
      Type.Object({
        title: Type.Optional(Type.String()),
        logoURL: Type.Optional(Type.String()),
        siteURL: Type.Optional(Type.String()),
      }),
    ),
  },
  { additionalProperties: false },
);

export type FwRuleT = Static<typeof FwRuleSchema>;
export type PortInput = Static<typeof PortSchema>;
/** A port rule as stored: cleared = destination '' and dstPort 0. */
export type Port = PortRule;
export type PortMapInput = Static<typeof PortMapSchema>;
export type Http = Static<typeof HttpSchema>;

/** A port mapping as stored: `port` is the local listen port (the hub API's `listenPort`). */
export type PortMap = PortMapRule & { http?: boolean };

export class RuleError extends Error {
  override readonly name = 'RuleError';
}

function schemaProblem(schema: TSchema, value: unknown, what: string): string | undefined {
  if (Value.Check(schema, value)) return undefined;
  const first = Value.Errors(schema, value)[0];
  return `${what}: ${first ? `${first.instancePath || '/'} ${first.message}` : 'invalid'}`;
}

function firewallProblem(rules: readonly FwRuleT[] | undefined, what: string): string | undefined {
  for (const rule of rules ?? []) {
    const why = explainRule(rule);
    if (why !== undefined) return `${what}: firewall: ${why}`;
  }
  return undefined;
}

/** Why a firewall list from a peer is invalid (schema or network), or undefined when it is fine. */
export function checkFirewall(rules: unknown): string | undefined {
  if (rules === undefined) return undefined;
  const problem = schemaProblem(Type.Array(FwRuleSchema), rules, 'firewall');
  return problem ?? firewallProblem(rules as FwRuleT[], 'site');
}

/** A host name or IP address (no scheme, no port). */
export function isHost(value: string): boolean {
  if (isIP(value) !== 0) return true;
  return /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*\.?$/i.test(value);
}

/** Validates and normalizes a Port rule; a cleared rule has destination '' and dstPort 0. */
export function checkPort(value: unknown): Port {
  const problem = schemaProblem(PortSchema, value, 'ports');
  if (problem) throw new RuleError(problem);
  const port = value as PortInput;
  const destination = (port.destination ?? '').trim();
  const dstPort = port.dstPort ?? 0;
  const what = `port ${port.port}`;
  const fw = firewallProblem(port.firewall, what);
  if (fw) throw new RuleError(fw);
  if ((destination === '') !== (dstPort === 0)) {
    throw new RuleError(`${what}: destination and dstPort go together (both set to forward, both empty to clear)`);
  }
  if (destination !== '' && !isHost(destination))
    throw new RuleError(`${what}: destination "${destination}" is not a host`);
  return { port: port.port, destination, dstPort, ...(port.firewall?.length ? { firewall: port.firewall } : {}) };
}

/** Validates a PortMap (client form `port` or hub form `listenPort`) and normalizes it. */
export function checkPortMap(value: unknown): PortMap {
  const problem = schemaProblem(PortMapSchema, value, 'portmaps');
  if (problem) throw new RuleError(problem);
  const input = value as PortMapInput;
  const port = input.port ?? input.listenPort;
  if (port === undefined) throw new RuleError('portmaps: port (or listenPort) is required');
  if (input.port !== undefined && input.listenPort !== undefined && input.port !== input.listenPort) {
    throw new RuleError(`portmaps: port ${input.port} and listenPort ${input.listenPort} disagree`);
  }
  const destination = (input.destination ?? '').trim();
  if (destination !== '' && !isHost(destination)) {
    throw new RuleError(`portmap ${port}: destination "${destination}" is not a host`);
  }
  return {
    port,
    dstPort: input.dstPort,
    destination,
    transport: input.transport ?? 'tcp',
    label: input.label ?? '',
    ...(input.http !== undefined ? { http: input.http } : {}),
  };
}

/** Validates an Http site rule (stored now; served by the HTTP sites issue). */
export function checkHttp(value: unknown): Http {
  const problem = schemaProblem(HttpSchema, value, 'https');
  if (problem) throw new RuleError(problem);
  const site = value as Http;
  const what = `site ${site.domain}`;
  if (!isHost(site.domain) || isIP(site.domain) !== 0) throw new RuleError(`${what}: domain is not a host name`);
  const fw = firewallProblem(site.firewall, what);
  if (fw) throw new RuleError(fw);
  if (site.upstreamURL) {
    let url: URL;
    try {
      url = new URL(site.upstreamURL);
    } catch {
      throw new RuleError(`${what}: upstreamURL "${site.upstreamURL}" is not a URL`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new RuleError(`${what}: upstreamURL must be http:// or https://`);
    }
  }
  if (site.redirectURL) {
    try {
      new URL(site.redirectURL);
    } catch {
      throw new RuleError(`${what}: redirectURL "${site.redirectURL}" is not a URL`);
    }
  }
  if (site.destination && !isHost(site.destination)) {
    throw new RuleError(`${what}: destination "${site.destination}" is not a host`);
  }
  const hasUpstream = !!site.upstreamURL || (!!site.destination && !!(site.port || site.tls));
  if (!hasUpstream && !site.webRoot && !site.redirectURL) {
    throw new RuleError(`${what}: needs destination+port, upstreamURL, webRoot or redirectURL`);
  }
  return site;
}
