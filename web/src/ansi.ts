/**
 * ANSI SGR colour codes in log lines → HTML. Text is HTML-escaped first and only our own `<span class>` tags are
 * added, so a log line can never inject markup. Supports reset, bold, dim, italic, underline, the 8 + 8 bright
 * foreground and background colours; other escape sequences are dropped.
 */

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c] as string);
}

interface Style {
  fg?: string;
  bg?: string;
  bold?: boolean;
  dim?: boolean;
  italic?: boolean;
  underline?: boolean;
}

const NAMES = ['black', 'red', 'green', 'yellow', 'blue', 'magenta', 'cyan', 'white'];

function apply(style: Style, codes: number[]): Style {
  let s = { ...style };
  if (codes.length === 0) codes = [0];
  for (const code of codes) {
    if (code === 0) s = {};
    else if (code === 1) s.bold = true;
    else if (code === 2) s.dim = true;
    else if (code === 3) s.italic = true;
    else if (code === 4) s.underline = true;
    else if (code === 22) {
      s.bold = false;
      s.dim = false;
    } else if (code === 23) s.italic = false;
    else if (code === 24) s.underline = false;
    else if (code >= 30 && code <= 37) s.fg = NAMES[code - 30];
    else if (code === 39) s.fg = undefined;
    else if (code >= 40 && code <= 47) s.bg = NAMES[code - 40];
    else if (code === 49) s.bg = undefined;
    else if (code >= 90 && code <= 97) s.fg = `bright-${NAMES[code - 90]}`;
    else if (code >= 100 && code <= 107) s.bg = `bright-${NAMES[code - 100]}`;
  }
  return s;
}

function classes(s: Style): string {
  const out: string[] = [];
  if (s.fg) out.push(`ansi-fg-${s.fg}`);
  if (s.bg) out.push(`ansi-bg-${s.bg}`);
  if (s.bold) out.push('ansi-bold');
  if (s.dim) out.push('ansi-dim');
  if (s.italic) out.push('ansi-italic');
  if (s.underline) out.push('ansi-underline');
  return out.join(' ');
}

// CSI sequences (ESC [ params final-byte) and lone ESC + one character.
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching ESC is the point
const SEQUENCE = /\x1b\[([0-9;]*)([\x40-\x7e])|\x1b[^[]/g;

export function ansiToHtml(text: string): string {
  let html = '';
  let style: Style = {};
  let last = 0;
  const emit = (chunk: string) => {
    if (chunk === '') return;
    const cls = classes(style);
    html += cls ? `<span class="${cls}">${escapeHtml(chunk)}</span>` : escapeHtml(chunk);
  };
  for (const m of text.matchAll(SEQUENCE)) {
    emit(text.slice(last, m.index));
    last = (m.index as number) + m[0].length;
    if (m[2] === 'm') {
      const codes = (m[1] as string)
        .split(';')
        .filter((c) => c !== '')
        .map(Number);
      style = apply(style, codes);
    }
  }
  emit(text.slice(last));
  return html;
}

/** The text without escape sequences (for search). */
export function stripAnsi(text: string): string {
  return text.replace(SEQUENCE, '');
}
