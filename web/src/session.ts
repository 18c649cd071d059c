/** What every view shares once signed in: the API client, the store, the live feed, and a way to report. */
import { createContext } from 'preact';
import { useContext, useEffect, useState } from 'preact/hooks';
import type { ApiClient } from './api.js';
import type { LiveFeed } from './live.js';
import type { InstanceStore } from './store.js';

export interface Session {
  api: ApiClient;
  store: InstanceStore;
  feed: LiveFeed;
  /** A new key (after regeneration here): saved where the old one was, and the feed reconnects with it. */
  setKey(key: string): void;
  notify(message: string, kind?: 'info' | 'error'): void;
}

export const SessionContext = createContext<Session | null>(null);

export function useSession(): Session {
  const s = useContext(SessionContext);
  if (!s) throw new Error('useSession outside a signed-in view');
  return s;
}

/** Re-renders the caller whenever the store changes. */
export function useStore(): InstanceStore {
  const { store } = useSession();
  const [, setVersion] = useState(store.version);
  useEffect(() => store.subscribe(() => setVersion(store.version)), [store]);
  return store;
}

const KEY_NAME = 'porthole.apiKey';

export const keyStorage = {
  load(): string {
    return localStorage.getItem(KEY_NAME) ?? sessionStorage.getItem(KEY_NAME) ?? '';
  },
  save(key: string, remember: boolean): void {
    this.clear();
    (remember ? localStorage : sessionStorage).setItem(KEY_NAME, key);
  },
  /** Replaces the key where it is kept now. */
  replace(key: string): void {
    const remembered = localStorage.getItem(KEY_NAME) !== null;
    this.save(key, remembered);
  },
  clear(): void {
    localStorage.removeItem(KEY_NAME);
    sessionStorage.removeItem(KEY_NAME);
  },
};
