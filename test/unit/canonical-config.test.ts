import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  canonicalConfig,
  canonicalUrl,
  type InheritedSettings,
  parsePortholeUrl,
  type TunnelUrl,
} from '../../src/config/url.js';

function tunnel(text: string): TunnelUrl {
  const url = parsePortholeUrl(text);
  assert.notEqual(url.role, 'master', `${text} should parse as a tunnel URL`);
  return url as TunnelUrl;
}

const PLAIN: InheritedSettings = { log: 'info', tls: 0, crt: '', key: '' };
const TLS1: InheritedSettings = { log: 'warn', tls: 1, crt: '', key: '' };
const TLS2: InheritedSettings = { log: 'debug', tls: 2, crt: '/m/c.pem', key: '/m/k.pem' };

/** What the master stores: `url` from the submitted URL, then `config` from `url`. */
function instance(submitted: string, inherited: InheritedSettings): { url: string; config: string } {
  const url = canonicalUrl(tunnel(submitted), inherited);
  return { url, config: canonicalConfig(tunnel(url)) };
}

const CLIENT_CONFIG_TAIL =
  'block=0&dial=auto&dns=5m0s&lbs=0&log=info&min=64&mode=0&notcp=0&noudp=0&proxy=0&rate=0&read=0s&slot=65536&sni=none';
const SERVER_CONFIG_TAIL =
  'block=0&dial=auto&dns=5m0s&lbs=0&log=info&max=1024&mode=0&notcp=0&noudp=0&proxy=0&rate=0&read=0s&slot=65536&tls=0&type=0';

describe('canonicalUrl', () => {
  test("adds the master's log when the URL has none", () => {
    assert.equal(canonicalUrl(tunnel('client://127.0.0.1:1080/a:80'), PLAIN), 'client://127.0.0.1:1080/a:80?log=info');
    assert.equal(canonicalUrl(tunnel('client://127.0.0.1:1080/a:80'), TLS1), 'client://127.0.0.1:1080/a:80?log=warn');
  });

  test("keeps the URL's own log", () => {
    assert.equal(
      canonicalUrl(tunnel('client://127.0.0.1:1080/a:80?log=error'), TLS1),
      'client://127.0.0.1:1080/a:80?log=error',
    );
  });

  test('treats an empty log as absent and adds the master\'s (NodePass: query.Get("log") == "")', () => {
    assert.equal(
      canonicalUrl(tunnel('client://127.0.0.1:1080/a:80?log='), TLS1),
      'client://127.0.0.1:1080/a:80?log=warn',
    );
  });

  test('sorts the query keys', () => {
    assert.equal(
      canonicalUrl(tunnel('client://127.0.0.1:1080/a:80?noudp=1&notcp=0&min=8&dns=1h'), PLAIN),
      'client://127.0.0.1:1080/a:80?dns=1h&log=info&min=8&notcp=0&noudp=1',
    );
  });

  test('keeps values as written (no default filling, no normalisation)', () => {
    assert.equal(
      canonicalUrl(tunnel('server://:10101/:8080?read=90s&min=010'), PLAIN),
      'server://:10101/:8080?log=info&min=010&read=90s',
    );
  });

  test('keeps the key, host and target group as written', () => {
    assert.equal(
      canonicalUrl(tunnel('server://k%40y@[::]:10101/[::1]:80,b.example:81'), PLAIN),
      'server://k%40y@[::]:10101/[::1]:80,b.example:81?log=info',
    );
  });

  test('a server inherits tls=1 from the master', () => {
    assert.equal(canonicalUrl(tunnel('server://:10101/:8080'), TLS1), 'server://:10101/:8080?log=warn&tls=1');
  });

  test('a server inherits tls=2 with crt and key from the master', () => {
    assert.equal(
      canonicalUrl(tunnel('server://:10101/:8080'), TLS2),
      'server://:10101/:8080?crt=%2Fm%2Fc.pem&key=%2Fm%2Fk.pem&log=debug&tls=2',
    );
  });

  test("a server's own tls wins over the master's", () => {
    assert.equal(canonicalUrl(tunnel('server://:10101/:8080?tls=0'), TLS2), 'server://:10101/:8080?log=debug&tls=0');
    assert.equal(canonicalUrl(tunnel('server://:10101/:8080?tls=1'), TLS2), 'server://:10101/:8080?log=debug&tls=1');
  });

  test('a server with tls=0 master gets no tls fields', () => {
    assert.equal(canonicalUrl(tunnel('server://:10101/:8080'), PLAIN), 'server://:10101/:8080?log=info');
  });

  test('a client never inherits tls', () => {
    assert.equal(canonicalUrl(tunnel('client://127.0.0.1:1080/a:80'), TLS2), 'client://127.0.0.1:1080/a:80?log=debug');
  });

  test('the result parses back to the same parameters when values need escaping', () => {
    const submitted = 'server://:10101/:8080?tls=2&crt=%2Fetc%2Fa%26b.pem&key=%2Fetc%2F100%25.pem&log=info';
    const original = tunnel(submitted).params;
    const again = tunnel(canonicalUrl(tunnel(submitted), PLAIN)).params;
    assert.equal(again.crt, '/etc/a&b.pem');
    assert.equal(again.key, '/etc/100%.pem');
    assert.deepEqual(again, original);
  });

  test('a plus sign in a value survives the round trip', () => {
    const submitted = 'server://:10101/:8080?tls=2&crt=%2Fa%2Bb.pem&key=%2Fk.pem';
    const again = tunnel(canonicalUrl(tunnel(submitted), PLAIN)).params;
    assert.equal(again.crt, '/a+b.pem');
  });
});

describe('canonicalConfig', () => {
  test('client golden string', () => {
    assert.deepEqual(instance('client://127.0.0.1:1080/a:80', PLAIN), {
      url: 'client://127.0.0.1:1080/a:80?log=info',
      config: `client://127.0.0.1:1080/a:80?${CLIENT_CONFIG_TAIL}`,
    });
  });

  test('client golden string, exactly as a NodePass master shows it', () => {
    assert.equal(
      canonicalConfig(tunnel('client://127.0.0.1:1080/a:80?log=info')),
      'client://127.0.0.1:1080/a:80?block=0&dial=auto&dns=5m0s&lbs=0&log=info&min=64&mode=0&notcp=0&noudp=0&proxy=0&rate=0&read=0s&slot=65536&sni=none',
    );
  });

  test('server golden string adds max, tls and type and has no min or sni', () => {
    assert.deepEqual(instance('server://:10101/:8080', PLAIN), {
      url: 'server://:10101/:8080?log=info',
      config: `server://:10101/:8080?${SERVER_CONFIG_TAIL}`,
    });
  });

  test('keys are sorted in byte order (notcp before noudp)', () => {
    const config = canonicalConfig(tunnel('client://127.0.0.1:1080/a:80'));
    const keys = (config.split('?')[1] ?? '').split('&').map((pair) => pair.split('=')[0] ?? '');
    assert.deepEqual(keys, [...keys].sort());
    assert.ok(keys.indexOf('notcp') < keys.indexOf('noudp'));
  });

  test('the master log shows up in the config through the url', () => {
    const { config } = instance('client://127.0.0.1:1080/a:80', TLS1);
    assert.equal(config, `client://127.0.0.1:1080/a:80?${CLIENT_CONFIG_TAIL.replace('log=info', 'log=warn')}`);
  });

  test('durations are written in Go form', () => {
    const config = canonicalConfig(tunnel('client://127.0.0.1:1080/a:80?read=90s&dns=1h'));
    assert.equal(
      config,
      'client://127.0.0.1:1080/a:80?block=0&dial=auto&dns=1h0m0s&lbs=0&log=info&min=64&mode=0&notcp=0&noudp=0&proxy=0&rate=0&read=1m30s&slot=65536&sni=none',
    );
    assert.match(canonicalConfig(tunnel('client://127.0.0.1:1080/a:80?dns=0&read=1500ms')), /dns=0s&.*read=1\.5s&/);
  });

  test('integers are written without leading zeros', () => {
    const config = canonicalConfig(tunnel('server://:10101/:8080?max=0100&rate=007&slot=00'));
    assert.match(config, /&max=100&/);
    assert.match(config, /&rate=7&/);
    assert.match(config, /&slot=0&/);
  });

  test('a hostname tunnel gives sni=<hostname>', () => {
    const config = canonicalConfig(tunnel('client://tunnel.example.com:10101/127.0.0.1:22'));
    assert.ok(config.endsWith('&sni=tunnel.example.com'), config);
  });

  test('an explicit sni is kept', () => {
    const config = canonicalConfig(tunnel('client://10.0.0.1:10101/127.0.0.1:22?sni=real.example'));
    assert.ok(config.endsWith('&sni=real.example'), config);
  });

  test('given values replace defaults', () => {
    const config = canonicalConfig(
      tunnel('client://10.0.0.1:10101/127.0.0.1:22?mode=2&lbs=1&min=8&block=23&proxy=1&dial=10.0.0.9&noudp=1'),
    );
    assert.equal(
      config,
      'client://10.0.0.1:10101/127.0.0.1:22?block=23&dial=10.0.0.9&dns=5m0s&lbs=1&log=info&min=8&mode=2&notcp=0&noudp=1&proxy=1&rate=0&read=0s&slot=65536&sni=none',
    );
  });

  test('empty values fall back to the defaults', () => {
    assert.equal(
      canonicalConfig(tunnel('client://127.0.0.1:1080/a:80?min=&read=&log=info')),
      `client://127.0.0.1:1080/a:80?${CLIENT_CONFIG_TAIL}`,
    );
  });

  test('a server that inherits tls=2 carries tls, crt and key', () => {
    const { url, config } = instance('server://:10101/:8080', TLS2);
    assert.equal(url, 'server://:10101/:8080?crt=%2Fm%2Fc.pem&key=%2Fm%2Fk.pem&log=debug&tls=2');
    assert.equal(
      config,
      'server://:10101/:8080?block=0&crt=%2Fm%2Fc.pem&dial=auto&dns=5m0s&key=%2Fm%2Fk.pem&lbs=0&log=debug&max=1024&mode=0&notcp=0&noudp=0&proxy=0&rate=0&read=0s&slot=65536&tls=2&type=0',
    );
  });

  test('a server that inherits tls=1 carries tls=1', () => {
    const { config } = instance('server://:10101/:8080', TLS1);
    assert.match(config, /&tls=1&type=0$/);
  });

  test('the key and target group are kept as written', () => {
    const config = canonicalConfig(tunnel('server://secret@[::]:10101/[::1]:80,b.example:81?log=info'));
    assert.equal(config, `server://secret@[::]:10101/[::1]:80,b.example:81?${SERVER_CONFIG_TAIL}`);
  });

  test('the config parses back to the same parameters', () => {
    const url = tunnel('client://example.com:10101/a:80,b:81?read=90s&block=3&rate=10');
    assert.deepEqual(tunnel(canonicalConfig(url)).params, url.params);
  });
});
