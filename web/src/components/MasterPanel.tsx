/** The master: /info figures with small live charts, alias, API key regeneration, TCP ping. */
import { useEffect, useRef, useState } from 'preact/hooks';
import { API_KEY_ID, ApiError, type Info, type Tcping } from '../api.js';
import { formatBytes, formatDuration, formatRate } from '../format.js';
import { useSession, useStore } from '../session.js';
import { HISTORY_MS, SeriesWindow } from '../traffic.js';
import { Chart } from './Chart.js';
import { Confirm } from './Confirm.js';
import { CopyButton } from './CopyButton.js';

const INFO_INTERVAL = 2000;
const pct = (v: number) => `${Math.round(v)} %`;

export function MasterPanel() {
  const { api, store } = useSession();
  const [info, setInfo] = useState<Info | null>(null);
  const [error, setError] = useState('');
  const [, setTick] = useState(0);
  const series = useRef({ cpu: new SeriesWindow(2), net: new SeriesWindow(2), last: null as Info | null, at: 0 });

  useEffect(() => {
    let alive = true;
    const load = async () => {
      if (document.visibilityState !== 'visible') return;
      try {
        const i = await api.info();
        if (!alive) return;
        const now = Date.now();
        const s = series.current;
        const memPct = i.mem_total > 0 ? (100 * i.mem_used) / i.mem_total : 0;
        s.cpu.push(now / 1000, [Math.max(0, i.cpu), memPct]);
        if (s.last) {
          const secs = (now - s.at) / 1000;
          const rx = i.netrx >= s.last.netrx ? (i.netrx - s.last.netrx) / secs : 0;
          const tx = i.nettx >= s.last.nettx ? (i.nettx - s.last.nettx) / secs : 0;
          s.net.push(now / 1000, [rx, tx]);
        }
        s.last = i;
        s.at = now;
        setInfo(i);
        setError('');
        setTick((t) => t + 1);
      } catch (err) {
        if (alive) setError((err as Error).message);
      }
    };
    void load();
    const timer = setInterval(load, INFO_INTERVAL);
    return () => {
      alive = false;
      clearInterval(timer);
    };
  }, [api]);

  const s = series.current;
  return (
    <section aria-labelledby="master-title">
      <h1 id="master-title">Master {info?.alias ? `· ${info.alias}` : ''}</h1>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      {info && (
        <dl class="figures">
          <div>
            <dt>Version</dt>
            <dd>{info.ver}</dd>
          </div>
          <div>
            <dt>Host</dt>
            <dd>
              {info.name} · {info.os}/{info.arch} · {info.noc} CPUs
            </dd>
          </div>
          <div>
            <dt>CPU</dt>
            <dd>{info.cpu < 0 ? 'n/a' : pct(info.cpu)}</dd>
          </div>
          <div>
            <dt>Memory</dt>
            <dd>
              {formatBytes(info.mem_used)} of {formatBytes(info.mem_total)}
            </dd>
          </div>
          <div>
            <dt>Swap</dt>
            <dd>
              {formatBytes(info.swap_used)} of {formatBytes(info.swap_total)}
            </dd>
          </div>
          <div>
            <dt>Network in / out (total)</dt>
            <dd>
              {formatBytes(info.netrx)} / {formatBytes(info.nettx)}
            </dd>
          </div>
          <div>
            <dt>Disk read / written</dt>
            <dd>
              {formatBytes(info.diskr)} / {formatBytes(info.diskw)}
            </dd>
          </div>
          <div>
            <dt>Uptime (master · system)</dt>
            <dd>
              {formatDuration(info.uptime)} · {formatDuration(info.sysup)}
            </dd>
          </div>
          <div>
            <dt>Master ID · log · TLS</dt>
            <dd>
              {info.mid} · {info.log} · tls={info.tls}
            </dd>
          </div>
        </dl>
      )}
      <div class="charts">
        <div>
          <h2>CPU and memory</h2>
          <Chart
            data={[s.cpu.t, ...s.cpu.values]}
            series={[
              { label: 'CPU', stroke: '#2f7de1' },
              { label: 'memory', stroke: '#2b8a3e' },
            ]}
            format={pct}
            range={[0, 100]}
            height={140}
            window={HISTORY_MS / 1000}
            label="CPU and memory use over the last 10 minutes"
          />
        </div>
        <div>
          <h2>Network</h2>
          <Chart
            data={[s.net.t, ...s.net.values]}
            series={[
              { label: 'in', stroke: '#2f7de1' },
              { label: 'out', stroke: '#d9480f' },
            ]}
            format={formatRate}
            height={140}
            window={HISTORY_MS / 1000}
            label="Host network rates over the last 10 minutes"
          />
        </div>
      </div>
      <AliasForm
        current={info?.alias ?? ''}
        onSaved={(i) => {
          setInfo(i);
          if (store.keyInstance) store.upsert({ ...store.keyInstance, alias: i.alias });
        }}
      />
      <KeyRegeneration />
      <TcpPing />
      <p class="muted small">
        API: <code>{api.base}</code> · <a href={`${api.base}/docs`}>API documentation</a>
      </p>
    </section>
  );
}

function AliasForm({ current, onSaved }: { current: string; onSaved(i: Info): void }) {
  const { api, notify } = useSession();
  const [alias, setAlias] = useState<string | null>(null);
  const [error, setError] = useState('');
  const value = alias ?? current;
  return (
    <form
      class="inline-form"
      onSubmit={async (e) => {
        e.preventDefault();
        try {
          onSaved(await api.setAlias(value));
          setAlias(null);
          setError('');
          notify('Master alias saved');
        } catch (err) {
          setError((err as Error).message);
        }
      }}
    >
      <label for="master-alias">Master alias</label>
      <input
        id="master-alias"
        value={value}
        maxLength={256}
        aria-describedby="master-alias-error"
        onInput={(e) => setAlias(e.currentTarget.value)}
      />
      <button type="submit">Save alias</button>
      <span id="master-alias-error" class="field-error" role="alert">
        {error}
      </span>
    </form>
  );
}

function KeyRegeneration() {
  const { api, setKey, store } = useSession();
  useStore();
  const [asking, setAsking] = useState(false);
  const [error, setError] = useState('');
  const [newKey, setNewKey] = useState('');
  const regenerate = async () => {
    setAsking(false);
    try {
      const view = await api.patch(API_KEY_ID, { action: 'restart' });
      store.upsert(view);
      setNewKey(view.url);
      setKey(view.url);
    } catch (err) {
      setError(err instanceof ApiError ? err.message : String(err));
    }
  };
  return (
    <div class="panel">
      <h2>API key</h2>
      <p>
        A new key ends every event stream at once: this page reconnects with the new key by itself; other dashboards and
        scripts must be given the new key.
      </p>
      <button type="button" class="danger" onClick={() => setAsking(true)}>
        Regenerate API key
      </button>
      {newKey && (
        <p>
          <output>
            New key: <code id="new-key">{newKey}</code>
          </output>{' '}
          <CopyButton text={newKey} label="Copy key" />
        </p>
      )}
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      {asking && (
        <Confirm
          title="Regenerate the API key?"
          confirmLabel="Regenerate"
          danger
          onCancel={() => setAsking(false)}
          onConfirm={regenerate}
        >
          <p>The old key stops working at once and every event stream reconnects.</p>
        </Confirm>
      )}
    </div>
  );
}

function TcpPing() {
  const { api } = useSession();
  const [target, setTarget] = useState('');
  const [result, setResult] = useState<Tcping | null>(null);
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  return (
    <form
      class="panel"
      onSubmit={async (e) => {
        e.preventDefault();
        setBusy(true);
        setError('');
        setResult(null);
        try {
          setResult(await api.tcping(target.trim()));
        } catch (err) {
          setError((err as Error).message);
        } finally {
          setBusy(false);
        }
      }}
    >
      <h2>TCP ping</h2>
      <label for="tcping-target">Target (host:port)</label>
      <div class="inline-form">
        <input
          id="tcping-target"
          value={target}
          placeholder="example.com:443"
          spellcheck={false}
          onInput={(e) => setTarget(e.currentTarget.value)}
        />
        <button type="submit" disabled={busy}>
          {busy ? 'Pinging…' : 'Ping'}
        </button>
      </div>
      <output id="tcping-result">
        {result &&
          (result.connected
            ? `${result.target}: connected in ${result.latency} ms`
            : `${result.target}: not connected (${result.error ?? 'no answer'})`)}
        {error && <span class="error">{error}</span>}
      </output>
    </form>
  );
}
