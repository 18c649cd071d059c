/**
 * NodePass control-channel signals: JSON `{"action","remote","id","fp"}` (empty fields left out, that field order),
 * XORed byte-wise with the tunnel key (cyclic), standard base64, one per line.
 */
export type SignalAction = 'tcp' | 'udp' | 'ping' | 'pong' | 'flush' | 'verify';

export interface Signal {
  action: SignalAction;
  remote?: string;
  id?: string;
  fp?: string;
}

const ACTIONS: ReadonlySet<string> = new Set(['tcp', 'udp', 'ping', 'pong', 'flush', 'verify']);

/** A control line that does not decode to a known signal. */
export class SignalDecodeError extends Error {
  override readonly name = 'SignalDecodeError';
}

function xorWithKey(data: Buffer, key: Buffer): Buffer {
  if (key.length === 0) return data;
  for (let i = 0; i < data.length; i++) data[i] = (data[i] as number) ^ (key[i % key.length] as number);
  return data;
}

/** Encodes a signal as the bytes to write on the control channel, newline included. */
export function encodeSignal(signal: Signal, key: string): Buffer {
  // Build the JSON by hand so field order and omission match NodePass exactly.
  const fields: string[] = [`"action":${JSON.stringify(signal.action)}`];
  if (signal.remote) fields.push(`"remote":${JSON.stringify(signal.remote)}`);
  if (signal.id) fields.push(`"id":${JSON.stringify(signal.id)}`);
  if (signal.fp) fields.push(`"fp":${JSON.stringify(signal.fp)}`);
  const json = Buffer.from(`{${fields.join(',')}}`, 'utf8');
  return Buffer.from(`${xorWithKey(json, Buffer.from(key, 'utf8')).toString('base64')}\n`, 'latin1');
}

/** Decodes one control line (without its newline). */
export function decodeSignal(line: string, key: string): Signal {
  const text = line.trim();
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length === 0) {
    throw new SignalDecodeError('control line is not base64');
  }
  const json = xorWithKey(Buffer.from(text, 'base64'), Buffer.from(key, 'utf8')).toString('utf8');
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch {
    throw new SignalDecodeError('control line is not a signal (wrong key?)');
  }
  const o = parsed as Record<string, unknown>;
  if (typeof o !== 'object' || o === null || typeof o.action !== 'string' || !ACTIONS.has(o.action)) {
    throw new SignalDecodeError(`unknown signal action ${JSON.stringify(o?.action)}`);
  }
  const signal: Signal = { action: o.action as SignalAction };
  for (const field of ['remote', 'id', 'fp'] as const) {
    const v = o[field];
    if (v === undefined || v === '') continue;
    if (typeof v !== 'string') throw new SignalDecodeError(`signal field ${field} is not a string`);
    signal[field] = v;
  }
  return signal;
}

/**
 * Splits a control-channel byte stream into lines. Lines longer than `maxLine` mean a broken or hostile peer.
 */
export class LineSplitter {
  private pending = '';

  constructor(private readonly maxLine = 64 * 1024) {}

  push(chunk: Buffer): string[] {
    this.pending += chunk.toString('latin1');
    const lines = this.pending.split('\n');
    this.pending = lines.pop() as string;
    if (this.pending.length > this.maxLine) throw new SignalDecodeError('control line too long');
    return lines.filter((l) => l.length > 0);
  }
}
