/** One instance: actions, live figures, traffic chart, config string, settings (alias, restart, tags, peer), logs. */
import { useState } from 'preact/hooks';
import { stripAnsi } from '../ansi.js';
import { ApiError, type Instance, type Patch } from '../api.js';
import { formatBytes, formatRate } from '../format.js';
import { href, navigate } from '../router.js';
import { useSession, useStore } from '../session.js';
import { HISTORY_MS } from '../traffic.js';
import { Chart } from './Chart.js';
import { Confirm } from './Confirm.js';
import { CopyButton } from './CopyButton.js';
import { LogView } from './LogView.js';
import { modeName, StatusBadge } from './StatusBadge.js';

type Action = 'start' | 'stop' | 'restart' | 'reset' | 'delete';

const CONFIRM: Record<Exclude<Action, 'start'>, { title: string; text: string; label: string }> = {
  stop: { title: 'Stop this instance?', text: 'Open sessions end and its port closes.', label: 'Stop' },
  restart: { title: 'Restart this instance?', text: 'Open sessions end; it starts again at once.', label: 'Restart' },
  reset: { title: 'Reset the traffic counters?', text: 'The four byte counters go back to zero.', label: 'Reset' },
  delete: {
    title: 'Delete this instance?',
    text: 'It is stopped and removed from the master. This cannot be undone.',
    label: 'Delete',
  },
};

export function InstanceDetail({ id }: { id: string }) {
  const { api, notify } = useSession();
  const store = useStore();
  const inst = store.instances.get(id);
  const [pending, setPending] = useState<Action | null>(null);
  const [busy, setBusy] = useState(false);

  if (!inst) {
    return (
      <section>
        <h1>Instance {id}</h1>
        <p class="empty">
          There is no instance {id} (it may have been deleted). <a href={href({ view: 'list' })}>All instances</a>
        </p>
      </section>
    );
  }

  const run = async (action: Action) => {
    setPending(null);
    setBusy(true);
    try {
      if (action === 'delete') {
        await api.remove(id);
        store.remove(id);
        notify(`Deleted ${inst.alias || id}`);
        navigate({ view: 'list' });
        return;
      }
      store.upsert(await api.patch(id, { action }));
      notify(`${action}: done`);
    } catch (err) {
      notify(`${action} failed: ${(err as Error).message}`, 'error');
    } finally {
      setBusy(false);
    }
  };

  // Why an instance is in error, without reading the whole log: its newest error or warning line (a child that
  // fails to start writes `porthole: <reason>`), else simply its newest line.
  const lines = store.logs.get(id) ?? [];
  const problem = [...lines].reverse().find((l) => /\b(ERROR|WARN)\b|^porthole: /.test(stripAnsi(l.text)));
  const lastProblem = stripAnsi((problem ?? lines.at(-1))?.text ?? '');
  const history = store.traffic.get(id);
  const points = history?.points ?? [];
  const data = [points.map((p) => p.t / 1000), points.map((p) => p.rx), points.map((p) => p.tx)];
  const rate = history?.current() ?? { rx: 0, tx: 0 };

  return (
    <section aria-labelledby="detail-title">
      <p>
        <a href={href({ view: 'list' })}>← All instances</a>
      </p>
      <div class="bar">
        <h1 id="detail-title">
          {inst.alias || inst.id} <StatusBadge status={inst.status} />
        </h1>
        <div class="actions">
          <button type="button" disabled={busy || inst.status === 'running'} onClick={() => run('start')}>
            Start
          </button>
          <button type="button" disabled={busy || inst.status !== 'running'} onClick={() => setPending('stop')}>
            Stop
          </button>
          <button type="button" disabled={busy} onClick={() => setPending('restart')}>
            Restart
          </button>
          <button type="button" disabled={busy} onClick={() => setPending('reset')}>
            Reset counters
          </button>
          <a class="button" href={href({ view: 'edit', id })}>
            Edit
          </a>
          <button type="button" class="danger" disabled={busy} onClick={() => setPending('delete')}>
            Delete
          </button>
        </div>
      </div>
      {pending && pending !== 'start' && (
        <Confirm
          title={CONFIRM[pending].title}
          confirmLabel={CONFIRM[pending].label}
          danger={pending === 'delete' || pending === 'stop'}
          onCancel={() => setPending(null)}
          onConfirm={() => run(pending)}
        >
          <p>{CONFIRM[pending].text}</p>
        </Confirm>
      )}

      {inst.status === 'error' && (
        <p class="error banner" role="alert">
          This instance is in error.{' '}
          {lastProblem ? <>Its last problem: {lastProblem}</> : 'Its log lines below say why (if they arrived here).'}
        </p>
      )}

      <dl class="figures">
        <div>
          <dt>In (from users)</dt>
          <dd class="rate-in">{formatRate(rate.rx)}</dd>
        </div>
        <div>
          <dt>Out (to users)</dt>
          <dd class="rate-out">{formatRate(rate.tx)}</dd>
        </div>
        <div>
          <dt>TCP bytes in / out</dt>
          <dd>
            <span class="tcprx">{formatBytes(inst.tcprx)}</span> / <span class="tcptx">{formatBytes(inst.tcptx)}</span>
          </dd>
        </div>
        <div>
          <dt>UDP bytes in / out</dt>
          <dd>
            {formatBytes(inst.udprx)} / {formatBytes(inst.udptx)}
          </dd>
        </div>
        <div>
          <dt>Sessions</dt>
          <dd>
            {inst.tcps} TCP · {inst.udps} UDP
          </dd>
        </div>
        <div>
          <dt>Ping · pool</dt>
          <dd>
            {inst.ping} ms · {inst.pool}
          </dd>
        </div>
        <div>
          <dt>Type</dt>
          <dd>
            {inst.type} · {modeName(inst.type, inst.mode)} (mode {inst.mode})
          </dd>
        </div>
      </dl>

      <h2>Traffic, last 10 minutes</h2>
      <Chart
        data={data}
        series={[
          { label: 'in', stroke: '#2f7de1' },
          { label: 'out', stroke: '#d9480f' },
        ]}
        format={formatRate}
        label={`Traffic of ${inst.alias || inst.id}: in ${formatRate(rate.rx)}, out ${formatRate(rate.tx)}`}
        window={HISTORY_MS / 1000}
      />
      <p class="muted small" data-testid="chart-points">
        {points.length} samples
      </p>

      <h2>Configuration</h2>
      <div class="config">
        <code id="config-string">{inst.config}</code>
        <CopyButton text={inst.config} label="Copy config" />
      </div>
      <p class="muted small">
        URL as given: <code>{inst.url}</code>
      </p>

      <Settings key={inst.id} inst={inst} />

      <h2>Logs</h2>
      <LogView lines={store.logs.get(id) ?? []} onClear={() => store.clearLogs(id)} />
    </section>
  );
}

/** Alias, restart policy, tags and peer: one PATCH, checked whole by the master before anything changes. */
function Settings({ inst }: { inst: Instance }) {
  const { api, notify, store } = useSession();
  const [alias, setAlias] = useState(inst.alias);
  const [restart, setRestart] = useState(inst.restart);
  const [tags, setTags] = useState(
    Object.entries(inst.meta.tags)
      .map(([k, v]) => `${k}=${v}`)
      .join('\n'),
  );
  const [peer, setPeer] = useState(inst.meta.peer);
  const [error, setError] = useState('');

  const save = async (e: Event) => {
    e.preventDefault();
    setError('');
    const parsed: Record<string, string> = {};
    for (const line of tags.split('\n')) {
      if (line.trim() === '') continue;
      const eq = line.indexOf('=');
      if (eq <= 0) {
        setError(`Tag "${line}" is not key=value`);
        return;
      }
      parsed[line.slice(0, eq).trim()] = line.slice(eq + 1).trim();
    }
    const body: Patch = { alias, restart, meta: { tags: parsed, peer } };
    try {
      store.upsert(await api.patch(inst.id, body));
      notify('Settings saved');
    } catch (err) {
      setError(err instanceof ApiError ? err.message : String(err));
    }
  };

  return (
    <form class="settings" onSubmit={save} aria-labelledby="settings-title">
      <h2 id="settings-title">Settings</h2>
      <div class="grid">
        <label>
          Alias
          <input value={alias} maxLength={256} onInput={(e) => setAlias(e.currentTarget.value)} />
        </label>
        <label class="check">
          <input type="checkbox" checked={restart} onChange={(e) => setRestart(e.currentTarget.checked)} />
          Restart policy: start with the master and after a crash
        </label>
        <label>
          Tags (one key=value per line)
          <textarea rows={3} value={tags} onInput={(e) => setTags(e.currentTarget.value)} />
        </label>
        <fieldset>
          <legend>Peer (the other end of this tunnel)</legend>
          <label>
            Peer service id (UUID v4)
            <input value={peer.sid} onInput={(e) => setPeer({ ...peer, sid: e.currentTarget.value })} />
          </label>
          <label>
            Peer type
            <select value={peer.type} onChange={(e) => setPeer({ ...peer, type: e.currentTarget.value })}>
              <option value="">none</option>
              <option value="0">0 · single-end</option>
              <option value="1">1 · NAT traversal</option>
              <option value="2">2 · tunnel forwarding</option>
            </select>
          </label>
          <label>
            Peer alias
            <input value={peer.alias} onInput={(e) => setPeer({ ...peer, alias: e.currentTarget.value })} />
          </label>
        </fieldset>
      </div>
      <p class="error" role="alert">
        {error}
      </p>
      <button type="submit" class="primary">
        Save settings
      </button>
    </form>
  );
}
