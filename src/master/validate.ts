import { ConfigError } from '../config/errors.js';
import { parseTunnelUrl, splitUrl, type TunnelUrl, type UrlParts } from '../config/url.js';
import { ACTIONS, UUID_V4 } from './schemas.js';

/**
 * Error messages for request bodies that failed schema validation. The schemas in schemas.ts decide what is valid;
 * these functions only say why a body is not, in NodePass's words where NodePass has any.
 */

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const tooLong = (v: unknown) => typeof v === 'string' && [...v].length > 256;
const uuid = new RegExp(UUID_V4);

export function explainCreate(body: unknown): string {
  if (!isObject(body) || typeof body.url !== 'string' || body.url === '') return 'Invalid request body';
  if (body.alias !== undefined && typeof body.alias !== 'string') return 'Invalid request body';
  if (tooLong(body.alias)) return 'Alias exceeds 256 characters';
  return 'Invalid request body';
}

export function explainPut(_body: unknown): string {
  return 'Invalid request body';
}

export function explainInfo(body: unknown): string {
  if (isObject(body) && tooLong(body.alias)) return 'Master alias exceeds 256 characters';
  return 'Invalid request body';
}

export function explainPatch(body: unknown): string {
  if (!isObject(body)) return 'Invalid request body';
  const { alias, action, restart, meta } = body;
  if (alias !== undefined) {
    if (typeof alias !== 'string') return 'Invalid request body: alias must be a string';
    if (tooLong(alias)) return 'Instance alias exceeds 256 characters';
  }
  if (action !== undefined && !(ACTIONS as readonly unknown[]).includes(action)) {
    return `Invalid action: ${typeof action === 'string' ? action : JSON.stringify(action)}`;
  }
  if (restart !== undefined && typeof restart !== 'boolean') return 'Invalid request body: restart must be a boolean';
  if (meta !== undefined) {
    if (!isObject(meta)) return 'Invalid request body: meta must be an object';
    const { peer, tags } = meta;
    if (peer !== undefined) {
      if (!isObject(peer)) return 'Invalid request body: meta.peer must be an object';
      for (const k of ['sid', 'type', 'alias']) {
        if (peer[k] !== undefined && typeof peer[k] !== 'string') {
          return `Invalid request body: meta.peer.${k} must be a string`;
        }
      }
      if (peer.sid !== undefined && peer.sid !== '' && !uuid.test(peer.sid as string)) {
        return 'Invalid peer.sid: must be a UUID v4 (e.g. 550e8400-e29b-41d4-a716-446655440000)';
      }
      if (peer.type !== undefined && !['', '0', '1', '2'].includes(peer.type as string)) {
        return 'Invalid peer.type: must be "0", "1" or "2"';
      }
      if (tooLong(peer.alias)) return 'Peer alias exceeds 256 characters';
    }
    if (tags !== undefined) {
      if (!isObject(tags)) return 'Invalid request body: meta.tags must be an object of strings';
      for (const [k, v] of Object.entries(tags)) {
        if (typeof v !== 'string') return `Invalid request body: meta.tags.${k} must be a string`;
        if (tooLong(k)) return 'Tag key exceeds 256 characters';
        if (tooLong(v)) return `Tag value for ${k} exceeds 256 characters`;
      }
    }
  }
  return 'Invalid request body';
}

/**
 * Parses an instance URL with the config grammar: NodePass's two messages for a malformed URL and a wrong scheme,
 * and the grammar's reason for anything else it refuses. Returns the parsed URL or the error message.
 */
export function parseInstanceUrl(text: string): TunnelUrl | string {
  let parts: UrlParts;
  try {
    parts = splitUrl(text);
  } catch (err) {
    return err instanceof ConfigError && err.param === 'scheme' ? 'Invalid URL scheme' : 'Invalid URL format';
  }
  if (parts.role === 'master') return 'Invalid URL scheme';
  try {
    return parseTunnelUrl(parts);
  } catch (err) {
    return `Invalid URL: ${(err as Error).message}`;
  }
}
