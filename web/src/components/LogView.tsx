/** An instance's log lines since this page connected: ANSI colours rendered (HTML-escaped), search, follow. */
import { useEffect, useRef, useState } from 'preact/hooks';
import { ansiToHtml, stripAnsi } from '../ansi.js';
import { LOG_LIMIT, type LogLine } from '../store.js';

interface Props {
  lines: LogLine[];
  onClear(): void;
}

export function LogView({ lines, onClear }: Props) {
  const [query, setQuery] = useState('');
  const [follow, setFollow] = useState(true);
  const box = useRef<HTMLDivElement>(null);
  const q = query.trim().toLowerCase();
  const shown = q === '' ? lines : lines.filter((l) => stripAnsi(l.text).toLowerCase().includes(q));

  useEffect(() => {
    if (follow && box.current) box.current.scrollTop = box.current.scrollHeight;
  });

  return (
    <div class="logs">
      <div class="bar">
        <label>
          Search logs
          <input type="search" value={query} onInput={(e) => setQuery(e.currentTarget.value)} />
        </label>
        <label class="check">
          <input type="checkbox" checked={follow} onChange={(e) => setFollow(e.currentTarget.checked)} />
          Follow
        </label>
        <button type="button" class="small" onClick={onClear}>
          Clear
        </button>
      </div>
      <p class="muted small">
        {shown.length} of {lines.length} lines since this page connected (the newest {LOG_LIMIT} are kept).
      </p>
      {/* biome-ignore lint/a11y/noNoninteractiveTabindex: the log is a scrollable region, reachable by keyboard */}
      <div class="log-lines" ref={box} role="log" aria-label="Instance log" tabIndex={0}>
        {shown.map((l) => (
          // ansiToHtml escapes the text and adds only its own spans.
          <div key={l.seq} class="log-line" dangerouslySetInnerHTML={{ __html: ansiToHtml(l.text) }} />
        ))}
      </div>
    </div>
  );
}
