/** Copies text; falls back to a selection + execCommand where the Clipboard API is absent (plain http off localhost). */
import { useState } from 'preact/hooks';

async function copy(text: string): Promise<void> {
  if (navigator.clipboard && window.isSecureContext) {
    await navigator.clipboard.writeText(text);
    return;
  }
  const area = document.createElement('textarea');
  area.value = text;
  area.setAttribute('readonly', '');
  area.style.position = 'fixed';
  area.style.opacity = '0';
  document.body.append(area);
  area.select();
  const ok = document.execCommand('copy');
  area.remove();
  if (!ok) throw new Error('copy refused');
}

export function CopyButton({ text, label = 'Copy' }: { text: string; label?: string }) {
  const [done, setDone] = useState<'' | 'ok' | 'failed'>('');
  return (
    <button
      type="button"
      class="small"
      onClick={() =>
        copy(text).then(
          () => setDone('ok'),
          () => setDone('failed'),
        )
      }
    >
      {label}
      <span aria-live="polite">{done === 'ok' ? ' ✓' : done === 'failed' ? ' (select and copy by hand)' : ''}</span>
    </button>
  );
}
