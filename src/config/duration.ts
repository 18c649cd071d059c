import { ConfigError } from './errors.js';

// Durations use Go's syntax (NodePass is written in Go and dashboards send Go durations): "300ms", "1.5h", "2h45m".
const UNIT_NS: Record<string, number> = {
  ns: 1,
  us: 1e3,
  µs: 1e3,
  μs: 1e3,
  ms: 1e6,
  s: 1e9,
  m: 60e9,
  h: 3600e9,
};

const TERM = /^(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/;

/** Parses a Go duration into nanoseconds; throws ConfigError naming `what` when it is not one. */
export function parseGoDuration(text: string, what: string): number {
  const bad = () =>
    new ConfigError(
      `${what}: invalid duration "${text}" (use Go form such as 500ms, 30s, 5m, 1h30m; 0 for none)`,
      what,
    );
  if (text === '0') return 0;
  if (text === '' || text.startsWith('-') || text.startsWith('+')) throw bad();
  let rest = text;
  let total = 0;
  while (rest.length > 0) {
    const m = TERM.exec(rest);
    if (!m) throw bad();
    total += Number(m[1]) * (UNIT_NS[m[2] as string] as number);
    rest = rest.slice(m[0].length);
  }
  if (!Number.isFinite(total)) throw bad();
  return Math.round(total);
}

/** Formats nanoseconds the way Go's time.Duration.String() does ("5m0s", "0s", "1.5s", "100ms"). */
export function formatGoDuration(ns: number): string {
  if (ns === 0) return '0s';
  if (ns < 1e3) return `${ns}ns`;
  if (ns < 1e6) return `${trimFraction(ns / 1e3)}µs`;
  if (ns < 1e9) return `${trimFraction(ns / 1e6)}ms`;
  const hours = Math.floor(ns / 3600e9);
  const minutes = Math.floor((ns % 3600e9) / 60e9);
  const seconds = (ns % 60e9) / 1e9;
  let out = '';
  if (hours > 0) out += `${hours}h`;
  if (hours > 0 || minutes > 0) out += `${minutes}m`;
  return `${out}${trimFraction(seconds)}s`;
}

function trimFraction(n: number): string {
  // Go prints up to 9 fractional digits with trailing zeros removed.
  return n.toFixed(9).replace(/\.?0+$/, '');
}
