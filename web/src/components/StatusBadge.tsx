export function StatusBadge({ status }: { status: string }) {
  const s = status || 'unknown';
  return <span class={`badge status-${s}`}>{s}</span>;
}

export function modeName(type: string, mode: number): string {
  if (type === 'client') return mode === 1 ? 'single-end' : mode === 2 ? 'dual-end' : 'auto';
  if (type === 'server') return mode === 1 ? 'reverse' : mode === 2 ? 'forward' : 'auto';
  return String(mode);
}
