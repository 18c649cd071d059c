import { useState } from 'preact/hooks';
import { ApiClient, ApiError } from '../api.js';

interface Props {
  base: string;
  /** Why the user is here again (a refused stored key, a key regenerated elsewhere). */
  notice: string;
  onSignedIn(api: ApiClient, remember: boolean): void;
}

export function SignIn({ base, notice, onSignedIn }: Props) {
  const [key, setKey] = useState('');
  const [remember, setRemember] = useState(true);
  const [error, setError] = useState(notice);
  const [busy, setBusy] = useState(false);

  const submit = async (e: Event) => {
    e.preventDefault();
    const trimmed = key.trim();
    if (trimmed === '') {
      setError('Enter the API key the master printed at start.');
      return;
    }
    setBusy(true);
    setError('');
    const api = new ApiClient(base, trimmed);
    try {
      await api.info();
      onSignedIn(api, remember);
    } catch (err) {
      const message = err instanceof ApiError && err.status === 401 ? `Sign-in refused: ${err.message}` : String(err);
      setError(message.replace(/^ApiError: /, ''));
      setBusy(false);
    }
  };

  return (
    <main class="signin">
      <h1>porthole</h1>
      <p>
        Sign in with the master's API key (printed at start as <code>API key:</code>).
      </p>
      <form onSubmit={submit}>
        <label for="api-key">API key</label>
        <input
          id="api-key"
          name="api-key"
          type="password"
          autocomplete="current-password"
          spellcheck={false}
          value={key}
          onInput={(e) => setKey(e.currentTarget.value)}
          aria-invalid={error !== ''}
          aria-describedby="signin-error"
          required
        />
        <label class="check">
          <input type="checkbox" checked={remember} onChange={(e) => setRemember(e.currentTarget.checked)} />
          Remember on this device
        </label>
        <p id="signin-error" class="error" role="alert">
          {error}
        </p>
        <button type="submit" class="primary" disabled={busy}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
    </main>
  );
}
