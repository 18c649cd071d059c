/** The dashboard: sign-in, then the live views over the master's public API. */
import 'uplot/dist/uPlot.min.css';
import './styles.css';
import { type ComponentChildren, render } from 'preact';
import { useEffect, useMemo, useState } from 'preact/hooks';
import { ApiClient, ApiError } from './api.js';
import { InstanceDetail } from './components/InstanceDetail.js';
import { InstanceForm } from './components/InstanceForm.js';
import { InstanceList } from './components/InstanceList.js';
import { MasterPanel } from './components/MasterPanel.js';
import { SignIn } from './components/SignIn.js';
import { type FeedState, LiveFeed } from './live.js';
import { href, type Route, useRoute } from './router.js';
import { keyStorage, type Session, SessionContext, useStore } from './session.js';
import { InstanceStore } from './store.js';

/** The API base the master wrote into the page (`{prefix}/v1`). */
const API_BASE = document.querySelector<HTMLMetaElement>('meta[name="porthole-api"]')?.content || '/api/v1';

interface Toast {
  id: number;
  text: string;
  kind: 'info' | 'error';
}

function App() {
  const [api, setApi] = useState<ApiClient | null>(null);
  const [checking, setChecking] = useState(() => keyStorage.load() !== '');
  const [notice, setNotice] = useState('');

  useEffect(() => {
    const saved = keyStorage.load();
    if (saved === '') return;
    const candidate = new ApiClient(API_BASE, saved);
    candidate.info().then(
      () => {
        setApi(candidate);
        setChecking(false);
      },
      (err: unknown) => {
        if (err instanceof ApiError && err.status === 401) keyStorage.clear();
        setNotice(`The saved API key did not work: ${(err as Error).message}`);
        setChecking(false);
      },
    );
  }, []);

  if (checking) return <p class="loading">Connecting…</p>;
  if (!api) {
    return (
      <SignIn
        base={API_BASE}
        notice={notice}
        onSignedIn={(a, remember) => {
          keyStorage.save(a.key, remember);
          setNotice('');
          setApi(a);
        }}
      />
    );
  }
  return (
    <Dashboard
      key={api.key}
      api={api}
      onSignOut={(why) => {
        keyStorage.clear();
        setNotice(why);
        setApi(null);
      }}
    />
  );
}

function Dashboard({ api, onSignOut }: { api: ApiClient; onSignOut(why: string): void }) {
  const [feedState, setFeedState] = useState<{ state: FeedState; detail: string }>({ state: 'connecting', detail: '' });
  const [toasts, setToasts] = useState<Toast[]>([]);
  const session = useMemo<Session>(() => {
    const store = new InstanceStore();
    const feed = new LiveFeed(api, {
      event: (e) => store.apply(e),
      snapshot: (list) => store.snapshot(list),
      state: (state, detail) => setFeedState({ state, detail }),
      unauthorized: (message) => onSignOut(`Signed out: ${message} (was the API key regenerated elsewhere?)`),
    });
    let toastId = 0;
    return {
      api,
      store,
      feed,
      setKey(key) {
        api.key = key;
        keyStorage.replace(key);
        feed.reconnect();
      },
      notify(text, kind = 'info') {
        const id = ++toastId;
        setToasts((t) => [...t.slice(-3), { id, text, kind }]);
        setTimeout(() => setToasts((t) => t.filter((x) => x.id !== id)), kind === 'error' ? 8000 : 4000);
      },
    };
    // One session per signed-in API client.
  }, [api]);

  useEffect(() => {
    session.feed.start();
    return () => session.feed.stop();
  }, [session]);

  return (
    <SessionContext.Provider value={session}>
      <Shell feedState={feedState} onSignOut={() => onSignOut('Signed out.')} />
      <div class="toasts" aria-live="polite">
        {toasts.map((t) => (
          <div key={t.id} class={`toast ${t.kind}`} role={t.kind === 'error' ? 'alert' : 'status'}>
            {t.text}
          </div>
        ))}
      </div>
    </SessionContext.Provider>
  );
}

const FEED_LABEL: Record<FeedState, string> = {
  connecting: 'connecting…',
  live: 'live',
  polling: 'polling (stream unavailable)',
  stopped: 'stopped',
};

const TITLES: Record<Route['view'], string> = {
  list: 'Instances',
  new: 'New instance',
  detail: 'Instance',
  edit: 'Edit instance',
  master: 'Master',
};

function Shell({ feedState, onSignOut }: { feedState: { state: FeedState; detail: string }; onSignOut(): void }) {
  const route = useRoute();
  const store = useStore();
  const masterAlias = store.keyInstance?.alias;
  let view: ComponentChildren;
  switch (route.view) {
    case 'list':
      view = <InstanceList />;
      break;
    case 'new':
      view = <InstanceForm />;
      break;
    case 'detail':
      // Keyed by id: moving to another instance starts its forms and dialogs afresh.
      view = <InstanceDetail key={route.id} id={route.id} />;
      break;
    case 'edit': {
      const inst = store.instances.get(route.id);
      view = inst ? <InstanceForm key={inst.id} instance={inst} /> : <InstanceDetail id={route.id} />;
      break;
    }
    case 'master':
      view = <MasterPanel />;
      break;
  }
  const title = TITLES[route.view];
  useEffect(() => {
    document.title = `${title} · porthole${masterAlias ? ` · ${masterAlias}` : ''}`;
  }, [title, masterAlias]);
  return (
    <>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header>
        <a class="brand" href={href({ view: 'list' })}>
          porthole{masterAlias ? ` · ${masterAlias}` : ''}
        </a>
        <nav aria-label="Main">
          <a href={href({ view: 'list' })} aria-current={route.view === 'list' ? 'page' : undefined}>
            Instances
          </a>
          <a href={href({ view: 'master' })} aria-current={route.view === 'master' ? 'page' : undefined}>
            Master
          </a>
        </nav>
        <output class={`feed feed-${feedState.state}`} title={feedState.detail}>
          {FEED_LABEL[feedState.state]}
          {feedState.detail && <span class="visually-hidden">: {feedState.detail}</span>}
        </output>
        <button type="button" class="small" onClick={onSignOut}>
          Sign out
        </button>
      </header>
      <main id="main">{view}</main>
    </>
  );
}

render(<App />, document.getElementById('app') as HTMLElement);
