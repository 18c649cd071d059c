/**
 * Create or edit an instance: fields that build the URL (every parameter with its default and meaning), or a pasted
 * URL. The master validates; its error is shown beside the field it names.
 */
import { useState } from 'preact/hooks';
import type { ParamDoc, TunnelRole } from '../../../src/config/param-docs.js';
import { ApiError, type Instance } from '../api.js';
import { href, navigate } from '../router.js';
import { useSession } from '../session.js';
import {
  buildUrl,
  emptyFields,
  fieldOfError,
  paramsFor,
  parseUrl,
  type UrlFields,
  UrlParseError,
} from '../url-builder.js';

interface Props {
  /** Absent: create. */
  instance?: Instance;
}

function FieldError({ id, errors }: { id: string; errors: Record<string, string> }) {
  const message = errors[id];
  return message ? (
    <span class="field-error" id={`err-${id}`} role="alert">
      {message}
    </span>
  ) : null;
}

function ParamInput({
  doc,
  role,
  value,
  error,
  onChange,
}: {
  doc: ParamDoc;
  role: TunnelRole;
  value: string;
  error: string | undefined;
  onChange(v: string): void;
}) {
  const id = `param-${doc.name}`;
  const described = `${id}-help${error ? ` err-${doc.name}` : ''}`;
  const defaultText = doc.defaultNote ?? (doc.default === '' ? 'none' : doc.default);
  return (
    <div class="param">
      <label for={id}>
        <code>{doc.name}</code>
      </label>
      {doc.kind === 'choice' ? (
        <select
          id={id}
          value={value}
          aria-describedby={described}
          aria-invalid={!!error}
          onChange={(e) => onChange(e.currentTarget.value)}
        >
          <option value="">default ({defaultText})</option>
          {(doc.roleChoices?.[role] ?? doc.choices)?.map((c) => (
            <option key={c.value} value={c.value}>
              {c.label}
            </option>
          ))}
        </select>
      ) : (
        <input
          id={id}
          value={value}
          placeholder={`default: ${defaultText}`}
          inputMode={doc.kind === 'integer' ? 'numeric' : undefined}
          aria-describedby={described}
          aria-invalid={!!error}
          spellcheck={false}
          onInput={(e) => onChange(e.currentTarget.value)}
        />
      )}
      <small id={`${id}-help`}>{doc.summary}</small>
      {error && (
        <span class="field-error" id={`err-${doc.name}`} role="alert">
          {error}
        </span>
      )}
    </div>
  );
}

export function InstanceForm({ instance }: Props) {
  const { api, notify, store } = useSession();
  const initial = (() => {
    if (!instance) return emptyFields('client');
    try {
      return parseUrl(instance.url);
    } catch {
      return emptyFields(instance.type === 'server' ? 'server' : 'client');
    }
  })();
  const [fields, setFields] = useState<UrlFields>(initial);
  const [alias, setAlias] = useState(instance?.alias ?? '');
  const [mode, setMode] = useState<'fields' | 'paste'>('fields');
  const [pasted, setPasted] = useState(instance?.url ?? '');
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [busy, setBusy] = useState(false);

  const url = mode === 'fields' ? buildUrl(fields) : pasted.trim();
  const set = (patch: Partial<UrlFields>) => setFields({ ...fields, ...patch });
  const setParam = (name: string, value: string) =>
    setFields({ ...fields, params: { ...fields.params, [name]: value } });
  const params = paramsFor(fields.role);
  const paramInputs = (dualEnd: boolean) =>
    params
      .filter((p) => !!p.dualEnd === dualEnd)
      .map((p) => (
        <ParamInput
          key={p.name}
          doc={p}
          role={fields.role}
          value={fields.params[p.name] ?? ''}
          error={errors[p.name]}
          onChange={(v) => setParam(p.name, v)}
        />
      ));

  const switchMode = (next: 'fields' | 'paste') => {
    setErrors({});
    if (next === 'paste') setPasted(buildUrl(fields));
    else if (pasted.trim() !== '') {
      try {
        setFields(parseUrl(pasted));
      } catch (err) {
        setErrors({ url: (err as Error).message });
        return;
      }
    }
    setMode(next);
  };

  const submit = async (e: Event) => {
    e.preventDefault();
    setErrors({});
    if (mode === 'paste') {
      try {
        parseUrl(url);
      } catch (err) {
        setErrors({ url: err instanceof UrlParseError ? err.message : String(err) });
        return;
      }
    }
    setBusy(true);
    try {
      let saved: Instance;
      if (!instance) {
        saved = await api.create(url, alias.trim());
      } else {
        saved = instance;
        if (url !== instance.url) saved = await api.replaceUrl(instance.id, url);
        if (alias !== instance.alias) saved = await api.patch(instance.id, { alias });
      }
      store.upsert(saved);
      notify(instance ? 'Instance updated' : `Created ${saved.alias || saved.id}`);
      navigate({ view: 'detail', id: saved.id });
    } catch (err) {
      const message = err instanceof ApiError ? err.message : String(err);
      const field = mode === 'paste' ? 'url' : /alias/i.test(message) ? 'alias' : fieldOfError(message);
      setErrors({ [field]: message });
      setBusy(false);
    }
  };

  return (
    <section aria-labelledby="form-title">
      <p>
        <a href={instance ? href({ view: 'detail', id: instance.id }) : href({ view: 'list' })}>← Back</a>
      </p>
      <h1 id="form-title">{instance ? `Edit ${instance.alias || instance.id}` : 'New instance'}</h1>
      <fieldset class="tabs">
        <legend class="visually-hidden">How to give the URL</legend>
        <button
          type="button"
          aria-pressed={mode === 'fields'}
          class={mode === 'fields' ? 'active' : ''}
          onClick={() => switchMode('fields')}
        >
          Build from fields
        </button>
        <button
          type="button"
          aria-pressed={mode === 'paste'}
          class={mode === 'paste' ? 'active' : ''}
          onClick={() => switchMode('paste')}
        >
          Paste a URL
        </button>
      </fieldset>
      <form onSubmit={submit} noValidate>
        <label for="alias">Alias</label>
        <input
          id="alias"
          value={alias}
          maxLength={256}
          placeholder="a name you will recognise"
          onInput={(e) => setAlias(e.currentTarget.value)}
        />
        <FieldError id="alias" errors={errors} />

        {mode === 'paste' ? (
          <>
            <label for="pasted-url">URL</label>
            <textarea
              id="pasted-url"
              rows={3}
              spellcheck={false}
              value={pasted}
              placeholder="client://127.0.0.1:8080/10.0.0.5:80?mode=1"
              aria-invalid={!!errors.url}
              aria-describedby="err-url"
              onInput={(e) => setPasted(e.currentTarget.value)}
            />
            <FieldError id="url" errors={errors} />
          </>
        ) : (
          <>
            <fieldset>
              <legend>Role</legend>
              <label class="check">
                <input
                  type="radio"
                  name="role"
                  value="client"
                  checked={fields.role === 'client'}
                  onChange={() => set({ role: 'client' })}
                />
                client: a forwarder, or the private end of a tunnel
              </label>
              <label class="check">
                <input
                  type="radio"
                  name="role"
                  value="server"
                  checked={fields.role === 'server'}
                  onChange={() => set({ role: 'server' })}
                />
                server: the public end of a tunnel
              </label>
            </fieldset>
            <div class="grid">
              <div>
                <label for="tunnel-host">
                  {fields.role === 'server' ? 'Tunnel listen host' : 'Tunnel / listen host'}
                </label>
                <input
                  id="tunnel-host"
                  value={fields.tunnelHost}
                  placeholder="empty = all interfaces"
                  spellcheck={false}
                  aria-invalid={!!errors.tunnelHost}
                  aria-describedby="tunnel-host-help err-tunnelHost"
                  onInput={(e) => set({ tunnelHost: e.currentTarget.value })}
                />
                <small id="tunnel-host-help">
                  Single-end client: where users connect. Dual-end: the server's tunnel address.
                </small>
                <FieldError id="tunnelHost" errors={errors} />
              </div>
              <div>
                <label for="tunnel-port">Port</label>
                <input
                  id="tunnel-port"
                  value={fields.tunnelPort}
                  inputMode="numeric"
                  required
                  aria-invalid={!!errors.tunnelPort}
                  aria-describedby="err-tunnelPort"
                  onInput={(e) => set({ tunnelPort: e.currentTarget.value })}
                />
                <FieldError id="tunnelPort" errors={errors} />
              </div>
              <div class="wide">
                <label for="targets">Targets</label>
                <input
                  id="targets"
                  value={fields.targets}
                  placeholder="10.0.0.5:80, 10.0.0.6:80"
                  spellcheck={false}
                  required
                  aria-invalid={!!errors.targets}
                  aria-describedby="targets-help err-targets"
                  onInput={(e) => set({ targets: e.currentTarget.value })}
                />
                <small id="targets-help">
                  host:port, comma-separated for several (see lbs); IPv6 in brackets, e.g. [::1]:80.
                </small>
                <FieldError id="targets" errors={errors} />
              </div>
              <div>
                <label for="tunnel-key">Tunnel key</label>
                <input
                  id="tunnel-key"
                  value={fields.key}
                  placeholder="empty = derived from the port"
                  spellcheck={false}
                  aria-describedby="err-key"
                  onInput={(e) => set({ key: e.currentTarget.value })}
                />
                <FieldError id="key" errors={errors} />
              </div>
            </div>
            <fieldset class="params">
              <legend>Parameters (empty = default)</legend>
              {paramInputs(false)}
            </fieldset>
            <details open={params.some((p) => p.dualEnd && (fields.params[p.name] || errors[p.name]))}>
              <summary>Dual-end tunnel parameters</summary>
              <fieldset class="params">
                <legend class="visually-hidden">Dual-end tunnel parameters</legend>
                {paramInputs(true)}
              </fieldset>
            </details>
            <p class="preview">
              URL: <code id="url-preview">{url}</code>
            </p>
            <FieldError id="url" errors={errors} />
          </>
        )}
        <div class="buttons">
          <button type="submit" class="primary" disabled={busy}>
            {busy ? 'Saving…' : instance ? 'Save and restart' : 'Create and start'}
          </button>
        </div>
      </form>
    </section>
  );
}
