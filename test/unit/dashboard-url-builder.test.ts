import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { PARAM_DOCS } from '../../src/config/param-docs.js';
import { PARAMS } from '../../src/config/params.js';
import { canonicalConfig, canonicalUrl, parsePortholeUrl, type TunnelUrl } from '../../src/config/url.js';
import { parseInstanceUrl } from '../../src/master/validate.js';
import {
  buildUrl,
  emptyFields,
  fieldOfError,
  parseUrl,
  type UrlFields,
  UrlParseError,
} from '../../web/src/url-builder.js';

const master = { log: 'info', tls: 0, crt: '', key: '' } as const;

function fields(patch: Partial<UrlFields>): UrlFields {
  return { ...emptyFields('client'), ...patch };
}

const CASES: UrlFields[] = [
  fields({ tunnelHost: '127.0.0.1', tunnelPort: '1080', targets: '10.0.0.5:80', params: { mode: '1' } }),
  fields({
    tunnelHost: '',
    tunnelPort: '8080',
    targets: '10.0.0.5:80, 10.0.0.6:80',
    params: { mode: '1', lbs: '2', proxy: '1', rate: '50', slot: '100', read: '1m30s', dns: '0', block: '12' },
  }),
  fields({ tunnelHost: '::1', tunnelPort: '1080', targets: '[::1]:9000', params: { mode: '1', dial: '::1' } }),
  {
    role: 'server',
    key: 'my key/é',
    tunnelHost: '',
    tunnelPort: '10101',
    targets: ':8080',
    params: { mode: '1', tls: '1', max: '512', type: '0', log: 'warn' },
  },
  fields({
    key: 'k',
    tunnelHost: 'tunnel.example.com',
    tunnelPort: '10101',
    targets: '127.0.0.1:80',
    params: { mode: '2', min: '8', sni: 'none' },
  }),
];

describe('dashboard URL builder', () => {
  for (const f of CASES) {
    const url = buildUrl(f);
    test(`fields → URL → master config → fields → the same config: ${url}`, () => {
      const parsed = parsePortholeUrl(url) as TunnelUrl;
      assert.equal(parsed.role, f.role);
      const config = canonicalConfig(parsed);
      // The master's config string read back into the form and rebuilt is byte-identical.
      const again = parseUrl(config);
      assert.equal(buildUrl(again), config);
      // Every value the user gave is in the config, in the master's canonical form.
      for (const [k, v] of Object.entries(f.params)) {
        assert.equal(again.params[k], PARAMS[k as keyof typeof PARAMS].canonical(v), k);
      }
      assert.equal(again.key, f.key);
      assert.equal(again.tunnelHost, f.tunnelHost);
      assert.equal(again.tunnelPort, f.tunnelPort);
      assert.equal(again.targets, f.targets.replace(/\s+/g, ''));
    });
    test(`the stored url parses back into the same fields: ${url}`, () => {
      const stored = canonicalUrl(parsePortholeUrl(url) as TunnelUrl, master);
      const back = parseUrl(stored);
      assert.deepEqual({ ...back.params, log: undefined }, { ...f.params, log: undefined });
      assert.equal(back.params.log, f.params.log ?? 'info');
      assert.equal(buildUrl(back), stored);
    });
  }

  test('empty parameters are left out; keys are sorted', () => {
    const url = buildUrl(
      fields({ tunnelHost: '127.0.0.1', tunnelPort: '1', targets: 'a:2', params: { slot: '5', mode: '1', rate: ' ' } }),
    );
    assert.equal(url, 'client://127.0.0.1:1/a:2?mode=1&slot=5');
  });

  test('a pasted URL with an unknown parameter or no port is refused, naming the field', () => {
    assert.throws(
      () => parseUrl('client://127.0.0.1:1/a:2?bogus=1'),
      (e: UrlParseError) => e.field === 'url',
    );
    assert.throws(
      () => parseUrl('client://127.0.0.1/a:2'),
      (e: UrlParseError) => e.field === 'tunnelPort',
    );
    assert.throws(() => parseUrl('http://x:1/a:2'), UrlParseError);
    assert.throws(() => parseUrl('client://127.0.0.1:1/a:2?rate=%zz'), UrlParseError);
  });

  test('the master’s validation errors map to the field they name', () => {
    const error = (url: string) => parseInstanceUrl(url) as string;
    assert.equal(fieldOfError(error('client://127.0.0.1:1080/a:80?rate=fast')), 'rate');
    assert.equal(fieldOfError(error('client://127.0.0.1:1080/a:80?read=soon')), 'read');
    assert.equal(fieldOfError(error('client://127.0.0.1:99999/a:80')), 'tunnelPort');
    assert.equal(fieldOfError(error('client://bad_host!:1080/a:80')), 'tunnelHost');
    assert.equal(fieldOfError(error('client://127.0.0.1:1080/')), 'targets');
    assert.equal(fieldOfError(error('client://127.0.0.1:1080/a')), 'targets');
    assert.equal(fieldOfError(error('client://127.0.0.1:1080/127.0.0.1:1080')), 'targets');
    assert.equal(fieldOfError(error('server://:1080/a:80?tls=2')), 'crt');
    assert.equal(fieldOfError(error('client://127.0.0.1:1080/a:80?notcp=1&noudp=1')), 'notcp');
    assert.equal(fieldOfError(error('client://127.0.0.1:1080/a:80?mode=1&mode=2')), 'mode');
    assert.equal(fieldOfError('Invalid URL format'), 'url');
  });

  test('the parameter catalogue agrees with the grammar: every parameter, its default, its roles', () => {
    const documented = new Set(PARAM_DOCS.map((d) => d.name));
    for (const [name, spec] of Object.entries(PARAMS)) {
      if (!spec.roles.includes('client') && !spec.roles.includes('server')) continue;
      assert.ok(documented.has(name), `${name} has a form field`);
    }
    for (const doc of PARAM_DOCS) {
      const spec = PARAMS[doc.name as keyof typeof PARAMS];
      assert.ok(spec, `${doc.name} is a parameter`);
      assert.equal(doc.default, spec.default ?? '', `${doc.name} default`);
      for (const role of doc.roles) assert.ok(spec.roles.includes(role), `${doc.name} applies to ${role}`);
      const choices = [...(doc.choices ?? []), ...Object.values(doc.roleChoices ?? {}).flat()];
      for (const c of choices) assert.doesNotThrow(() => spec.parse(c.value), `${doc.name}=${c.value}`);
      assert.ok(doc.summary.length > 10);
    }
  });
});
