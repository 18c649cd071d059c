/** Every instance with live figures; filter by text, status and tag. */
import { useMemo, useState } from 'preact/hooks';
import type { Instance } from '../api.js';
import { formatBytes, formatRate } from '../format.js';
import { href } from '../router.js';
import { useStore } from '../session.js';
import { modeName, StatusBadge } from './StatusBadge.js';

export function matches(i: Instance, text: string, status: string, tag: string): boolean {
  if (status !== '' && i.status !== status) return false;
  if (tag !== '') {
    const [k, v] = tag.split('\u0000');
    if (i.meta.tags[k as string] !== v) return false;
  }
  if (text === '') return true;
  const hay = `${i.id} ${i.alias} ${i.url} ${i.type} ${Object.entries(i.meta.tags)
    .map(([k, v]) => `${k}=${v}`)
    .join(' ')}`.toLowerCase();
  return text
    .toLowerCase()
    .split(/\s+/)
    .every((word) => hay.includes(word));
}

export function InstanceList() {
  const store = useStore();
  const [text, setText] = useState('');
  const [status, setStatus] = useState('');
  const [tag, setTag] = useState('');
  const all = store.list();
  const tags = useMemo(() => {
    const set = new Set<string>();
    for (const i of all) for (const [k, v] of Object.entries(i.meta.tags)) set.add(`${k}\u0000${v}`);
    return [...set].sort();
  }, [all]);
  const shown = all.filter((i) => matches(i, text, status, tag)).sort((a, b) => a.alias.localeCompare(b.alias));

  return (
    <section aria-labelledby="list-title">
      <div class="bar">
        <h1 id="list-title">Instances</h1>
        <a class="button primary" href={href({ view: 'new' })}>
          New instance
        </a>
      </div>
      <div class="filters">
        <label>
          Search
          <input
            type="search"
            placeholder="alias, id, address, tag"
            value={text}
            onInput={(e) => setText(e.currentTarget.value)}
          />
        </label>
        <label>
          Status
          <select value={status} onChange={(e) => setStatus(e.currentTarget.value)}>
            <option value="">all</option>
            <option value="running">running</option>
            <option value="stopped">stopped</option>
            <option value="error">error</option>
          </select>
        </label>
        <label>
          Tag
          <select value={tag} onChange={(e) => setTag(e.currentTarget.value)}>
            <option value="">all</option>
            {tags.map((t) => (
              <option key={t} value={t}>
                {t.replace('\u0000', '=')}
              </option>
            ))}
          </select>
        </label>
      </div>
      {all.length === 0 ? (
        <p class="empty">
          No instances yet. <a href={href({ view: 'new' })}>Create the first one</a>.
        </p>
      ) : shown.length === 0 ? (
        <p class="empty">No instance matches the filters ({all.length} in all).</p>
      ) : (
        <table class="instances">
          <caption class="visually-hidden">Instances ({shown.length} shown)</caption>
          <thead>
            <tr>
              <th scope="col">Instance</th>
              <th scope="col">Status</th>
              <th scope="col">Type</th>
              <th scope="col">In</th>
              <th scope="col">Out</th>
              <th scope="col">Sessions</th>
              <th scope="col">Ping</th>
              <th scope="col">Pool</th>
              <th scope="col">Total</th>
            </tr>
          </thead>
          <tbody>
            {shown.map((i) => {
              const rate = store.traffic.get(i.id)?.current() ?? { rx: 0, tx: 0 };
              return (
                <tr key={i.id} data-id={i.id}>
                  <th scope="row" data-label="Instance">
                    <a href={href({ view: 'detail', id: i.id })}>{i.alias || i.id}</a>
                    <span class="muted"> {i.id}</span>
                    <div class="tags">
                      {Object.entries(i.meta.tags).map(([k, v]) => (
                        <span class="tag" key={k}>
                          {k}={v}
                        </span>
                      ))}
                    </div>
                  </th>
                  <td data-label="Status">
                    <StatusBadge status={i.status} />
                  </td>
                  <td data-label="Type">
                    {i.type} · {modeName(i.type, i.mode)}
                  </td>
                  <td data-label="In" class="num rate-in">
                    {formatRate(rate.rx)}
                  </td>
                  <td data-label="Out" class="num rate-out">
                    {formatRate(rate.tx)}
                  </td>
                  <td data-label="Sessions" class="num">
                    {i.tcps} TCP · {i.udps} UDP
                  </td>
                  <td data-label="Ping" class="num">
                    {i.ping} ms
                  </td>
                  <td data-label="Pool" class="num">
                    {i.pool}
                  </td>
                  <td data-label="Total" class="num">
                    ↓ {formatBytes(i.tcprx + i.udprx)} · ↑ {formatBytes(i.tcptx + i.udptx)}
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
    </section>
  );
}
