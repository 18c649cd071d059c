import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ConfigError } from '../../src/config/errors.js';
import type { TunnelParams } from '../../src/config/params.js';
import { deriveTunnelKey, fnv1a32 } from '../../src/config/tunnel-key.js';
import { type MasterUrl, type PortholeUrl, parsePortholeUrl, type TunnelUrl } from '../../src/config/url.js';

function tunnel(text: string): TunnelUrl {
  const url: PortholeUrl = parsePortholeUrl(text);
  assert.notEqual(url.role, 'master', `${text} should parse as a tunnel URL`);
  return url as TunnelUrl;
}

function master(text: string): MasterUrl {
  const url = parsePortholeUrl(text);
  assert.equal(url.role, 'master', `${text} should parse as a master URL`);
  return url as MasterUrl;
}

/** Asserts that parsing `text` throws a ConfigError for `param` whose message contains every fragment. */
function rejects(text: string, param: string, ...fragments: string[]): void {
  assert.throws(
    () => parsePortholeUrl(text),
    (err: unknown) => {
      assert.ok(err instanceof ConfigError, `${text}: expected ConfigError, got ${String(err)}`);
      assert.equal(err.param, param, `${text}: param of "${err.message}"`);
      for (const fragment of fragments) {
        assert.ok(err.message.includes(fragment), `${text}: message "${err.message}" should contain "${fragment}"`);
      }
      return true;
    },
  );
}

const CLIENT_DEFAULTS: TunnelParams = {
  log: 'info',
  tls: 0,
  crt: '',
  key: '',
  dns: 300_000,
  sni: 'none',
  lbs: 0,
  min: 64,
  max: 1024,
  mode: 0,
  type: 0,
  dial: 'auto',
  read: 0,
  rate: 0,
  slot: 65536,
  proxy: 0,
  block: new Set(),
  notcp: 0,
  noudp: 0,
};

describe('tunnel URL: key', () => {
  test('the username is the tunnel key', () => {
    assert.equal(tunnel('server://secret@:10101/:8080').key, 'secret');
  });

  test('the password part of the userinfo is ignored', () => {
    assert.equal(tunnel('client://secret:ignored@127.0.0.1:10101/127.0.0.1:8080').key, 'secret');
  });

  test('the username is percent-decoded', () => {
    assert.equal(tunnel('server://k%40y%3Az%20w@:10101/:8080').key, 'k@y:z w');
  });

  test('a plus sign in the username stays a plus sign (Go url userinfo semantics)', () => {
    // NodePass reads the key with Go's url.User.Username(), which does not turn '+' into a space.
    assert.equal(tunnel('server://a+b@:10101/:8080').key, 'a+b');
  });

  test('without a username the key is hex FNV-1a-32 of the port: 10101 gives e68be2b4', () => {
    assert.equal(tunnel('server://:10101/:8080').key, 'e68be2b4');
    assert.equal(tunnel('client://10.0.0.1:10101/127.0.0.1:22').key, 'e68be2b4');
  });

  test('an empty username (bare @) falls back to the derived key', () => {
    assert.equal(tunnel('server://@:10101/:8080').key, 'e68be2b4');
  });

  test('fnv1a32 matches the reference FNV-1a vectors', () => {
    assert.equal(fnv1a32(''), 0x811c9dc5);
    assert.equal(fnv1a32('a'), 0xe40c292c);
    assert.equal(fnv1a32('foobar'), 0xbf9cf968);
  });

  test('deriveTunnelKey always gives 8 lowercase hex digits', () => {
    for (let port = 1; port <= 65535; port++) {
      const key = deriveTunnelKey('', String(port));
      if (!/^[0-9a-f]{8}$/.test(key)) assert.fail(`port ${port} gave key "${key}"`);
    }
  });

  test('deriveTunnelKey prefers the username', () => {
    assert.equal(deriveTunnelKey('mine', '10101'), 'mine');
    assert.equal(deriveTunnelKey('', '10101'), 'e68be2b4');
  });
});

describe('tunnel URL: addresses', () => {
  test('an empty tunnel host means all interfaces', () => {
    const url = tunnel('server://:10101/:8080');
    assert.equal(url.role, 'server');
    assert.deepEqual(url.tunnel, { host: '', port: 10101 });
    assert.deepEqual(url.targets, [{ host: '', port: 8080 }]);
  });

  test('IPv4 and hostname endpoints', () => {
    const url = tunnel('client://127.0.0.1:1080/example.com:80');
    assert.equal(url.role, 'client');
    assert.deepEqual(url.tunnel, { host: '127.0.0.1', port: 1080 });
    assert.deepEqual(url.targets, [{ host: 'example.com', port: 80 }]);
  });

  test('IPv6 tunnel and targets are written in brackets and stored without them', () => {
    const url = tunnel('server://[::]:10101/[2001:db8::1]:8080');
    assert.deepEqual(url.tunnel, { host: '::', port: 10101 });
    assert.deepEqual(url.targets, [{ host: '2001:db8::1', port: 8080 }]);
    assert.deepEqual(tunnel('client://[::1]:1080/[::1]:80').tunnel, { host: '::1', port: 1080 });
  });

  test('a comma-separated path is a target group, in order', () => {
    const url = tunnel('client://127.0.0.1:1080/a.example:80,10.0.0.2:81,[2001:db8::5]:82,:83');
    assert.deepEqual(url.targets, [
      { host: 'a.example', port: 80 },
      { host: '10.0.0.2', port: 81 },
      { host: '2001:db8::5', port: 82 },
      { host: '', port: 83 },
    ]);
  });

  test('the scheme is case-insensitive', () => {
    assert.equal(tunnel('SERVER://:10101/:8080').role, 'server');
  });

  test('the URL keeps its raw pieces', () => {
    const url = tunnel('client://k@127.0.0.1:1080/a:80,b:81?log=warn&min=8');
    assert.deepEqual(url.parts, {
      role: 'client',
      userinfo: 'k',
      hostport: '127.0.0.1:1080',
      path: '/a:80,b:81',
      query: [
        ['log', 'warn'],
        ['min', '8'],
      ],
    });
  });

  test('ports 1 and 65535 are accepted', () => {
    assert.deepEqual(tunnel('server://:1/:65535').targets, [{ host: '', port: 65535 }]);
  });
});

describe('tunnel URL: parameter defaults', () => {
  test('a client URL without a query has every default', () => {
    assert.deepEqual(tunnel('client://127.0.0.1:1080/a:80').params, CLIENT_DEFAULTS);
  });

  test('a server URL without a query has every default', () => {
    assert.deepEqual(tunnel('server://:10101/:8080').params, CLIENT_DEFAULTS);
  });

  test('sni defaults to the tunnel hostname', () => {
    assert.equal(tunnel('client://example.com:10101/127.0.0.1:22').params.sni, 'example.com');
  });

  test('sni defaults to none for an IP or empty tunnel host', () => {
    assert.equal(tunnel('client://10.0.0.1:10101/127.0.0.1:22').params.sni, 'none');
    assert.equal(tunnel('client://[2001:db8::1]:10101/127.0.0.1:22').params.sni, 'none');
    assert.equal(tunnel('server://:10101/:22').params.sni, 'none');
  });

  test('an empty parameter value means the default', () => {
    const url = tunnel('client://127.0.0.1:1080/a:80?log=&min=&dns=&block=&read=&sni=');
    assert.deepEqual(url.params, CLIENT_DEFAULTS);
  });
});

describe('tunnel URL: parameter values', () => {
  const base = 'server://:10101/:8080';

  test('log accepts every level', () => {
    for (const level of ['none', 'debug', 'info', 'warn', 'error', 'event'] as const) {
      assert.equal(tunnel(`${base}?log=${level}`).params.log, level);
    }
  });

  test('numeric choices become numbers', () => {
    const p = tunnel(`${base}?tls=1&lbs=2&mode=2&type=3&proxy=1&notcp=1`).params;
    assert.equal(p.tls, 1);
    assert.equal(p.lbs, 2);
    assert.equal(p.mode, 2);
    assert.equal(p.type, 3);
    assert.equal(p.proxy, 1);
    assert.equal(p.notcp, 1);
    assert.equal(p.noudp, 0);
  });

  test('tls=2 with crt and key keeps the (percent-decoded) paths', () => {
    const p = tunnel(`${base}?tls=2&crt=%2Fetc%2Fssl%2Fa%20b.pem&key=/etc/ssl/k.pem`).params;
    assert.equal(p.tls, 2);
    assert.equal(p.crt, '/etc/ssl/a b.pem');
    assert.equal(p.key, '/etc/ssl/k.pem');
  });

  test('a plus sign in a query value is a space (form encoding, as Go url.ParseQuery)', () => {
    assert.equal(tunnel(`${base}?tls=2&crt=/a+b.pem&key=/k.pem`).params.crt, '/a b.pem');
  });

  test('integers: min, max, rate, slot', () => {
    const p = tunnel(`${base}?min=1&max=65536&rate=100&slot=0`).params;
    assert.equal(p.min, 1);
    assert.equal(p.max, 65536);
    assert.equal(p.rate, 100);
    assert.equal(p.slot, 0);
  });

  test('durations are milliseconds: read, dns', () => {
    const p = tunnel(`${base}?read=1m30s&dns=0`).params;
    assert.equal(p.read, 90_000);
    assert.equal(p.dns, 0);
    assert.equal(tunnel(`${base}?read=300ms&dns=1h`).params.read, 300);
    assert.equal(tunnel(`${base}?read=300ms&dns=1h`).params.dns, 3_600_000);
  });

  test('dial accepts auto, IPv4 and IPv6', () => {
    assert.equal(tunnel(`${base}?dial=auto`).params.dial, 'auto');
    assert.equal(tunnel(`${base}?dial=10.0.0.1`).params.dial, '10.0.0.1');
    assert.equal(tunnel(`${base}?dial=2001:db8::1`).params.dial, '2001:db8::1');
  });

  test('block digits select the sniffed protocols', () => {
    assert.deepEqual(tunnel(`${base}?block=0`).params.block, new Set());
    assert.deepEqual(tunnel(`${base}?block=1`).params.block, new Set(['socks']));
    assert.deepEqual(tunnel(`${base}?block=23`).params.block, new Set(['http', 'tls']));
    assert.deepEqual(tunnel(`${base}?block=123`).params.block, new Set(['socks', 'http', 'tls']));
  });

  test('sni accepts a hostname or none', () => {
    assert.equal(tunnel(`client://10.0.0.1:10101/:22?sni=tunnel.example.com`).params.sni, 'tunnel.example.com');
    assert.equal(tunnel(`client://example.com:10101/:22?sni=none`).params.sni, 'none');
  });

  test('query order does not matter', () => {
    const a = tunnel(`${base}?min=8&log=warn`).params;
    const b = tunnel(`${base}?log=warn&min=8`).params;
    assert.deepEqual(a, b);
  });

  test('tls=2 without crt/key is fine on a dual-end client (it does not use them)', () => {
    assert.equal(tunnel('client://10.0.0.1:10101/:22?mode=2&tls=2').params.tls, 2);
  });
});

describe('tunnel URL: bad parameter values', () => {
  const base = 'server://:10101/:8080';
  const cases: Array<[query: string, param: string, fragments: string[]]> = [
    ['log=verbose', 'log', ['"verbose"', 'none, debug, info, warn, error, event']],
    ['tls=3', 'tls', ['"3"', '0, 1, 2']],
    ['lbs=5', 'lbs', ['"5"', '0, 1, 2']],
    ['min=0', 'min', ['"0"']],
    ['min=abc', 'min', ['"abc"']],
    ['min=-1', 'min', ['"-1"']],
    ['max=70000', 'max', ['"70000"']],
    ['max=0', 'max', ['"0"']],
    ['mode=3', 'mode', ['"3"', '0, 1, 2']],
    ['type=4', 'type', ['"4"', '0, 1, 2, 3']],
    ['dial=not-an-ip', 'dial', ['"not-an-ip"', 'auto']],
    ['dial=10.0.0.256', 'dial', ['"10.0.0.256"']],
    ['read=5', 'read', ['"5"']],
    ['read=-1s', 'read', ['"-1s"']],
    ['read=5x', 'read', ['"5x"']],
    ['dns=abc', 'dns', ['"abc"']],
    ['rate=-1', 'rate', ['"-1"']],
    ['rate=1.5', 'rate', ['"1.5"']],
    ['slot=x', 'slot', ['"x"']],
    ['slot=-1', 'slot', ['"-1"']],
    ['proxy=2', 'proxy', ['"2"', '0, 1']],
    ['block=4', 'block', ['"4"', '1 = SOCKS', '2 = HTTP', '3 = TLS']],
    ['block=ab', 'block', ['"ab"']],
    ['notcp=2', 'notcp', ['"2"', '0, 1']],
    ['noudp=yes', 'noudp', ['"yes"', '0, 1']],
    ['sni=bad%20host', 'sni', ['"bad host"']],
    ['sni=bad!host', 'sni', ['"bad!host"']],
    ['sni=-leading.example', 'sni', ['"-leading.example"']],
    ['sni=a..b', 'sni', ['"a..b"']],
  ];
  for (const [query, param, fragments] of cases) {
    test(`${query} is rejected naming ${param}`, () => {
      rejects(`${base}?${query}`, param, `${param}:`, ...fragments);
    });
  }

  test('the same bad values are rejected on a client URL too', () => {
    rejects('client://127.0.0.1:1080/a:80?min=0', 'min', 'min:');
    rejects('client://127.0.0.1:1080/a:80?sni=x_y!', 'sni', 'sni:');
  });

  test('choice values must match exactly (no case folding, no padding)', () => {
    rejects(`${base}?log=INFO`, 'log', 'log:');
    rejects(`${base}?tls=01`, 'tls', 'tls:');
    rejects(`${base}?mode=%201`, 'mode', 'mode:');
  });

  test('an unknown parameter is rejected and named', () => {
    rejects(`${base}?foo=1`, 'foo', 'unknown parameter', '"foo"', 'log');
  });

  test('a repeated parameter is rejected and named', () => {
    rejects(`${base}?log=info&log=warn`, 'log', '"log"', 'more than once');
  });

  test('a parameter repeated with the same value is still rejected', () => {
    rejects(`${base}?min=8&min=8`, 'min', '"min"', 'more than once');
  });

  test('tls=2 without crt and key is rejected', () => {
    rejects(`${base}?tls=2`, 'tls', 'tls=2', 'crt', 'key');
    rejects(`${base}?tls=2&crt=/c.pem`, 'tls', 'tls=2');
    rejects(`${base}?tls=2&key=/k.pem`, 'tls', 'tls=2');
  });

  test('notcp=1 together with noudp=1 is rejected', () => {
    rejects(`${base}?notcp=1&noudp=1`, 'notcp', 'notcp=1', 'noudp=1');
  });

  test('a bad percent-encoding in a value is rejected naming the parameter', () => {
    rejects(`${base}?tls=2&crt=%zz&key=/k`, 'crt', 'crt:', 'percent-encoding');
  });
});

describe('tunnel URL: bad structure', () => {
  test('a tunnel address without a port is rejected', () => {
    rejects('server://example.com/:8080', 'tunnel address', 'tunnel address', 'no port');
  });

  test('a target without a port is rejected', () => {
    rejects('server://:10101/example.com', 'target address', 'target address', 'no port');
  });

  test('port 0 and port 70000 are rejected on tunnel and target', () => {
    rejects('server://:0/:8080', 'tunnel address', 'tunnel address', '"0"', '1 to 65535');
    rejects('server://:70000/:8080', 'tunnel address', 'tunnel address', '"70000"');
    rejects('server://:10101/:0', 'target address', 'target address', '"0"');
    rejects('server://:10101/:70000', 'target address', 'target address', '"70000"');
  });

  test('a non-numeric port is rejected', () => {
    rejects('server://:http/:8080', 'tunnel address', 'tunnel address', '"http"');
    rejects('server://:10101/a:-1', 'target address', 'target address');
  });

  test('an unbracketed IPv6 address is rejected, for tunnel and target', () => {
    rejects('server://::1:10101/:8080', 'tunnel address', 'brackets');
    rejects('client://127.0.0.1:1080/2001:db8::1:80', 'target address', 'brackets');
  });

  test('brackets around something that is not IPv6 are rejected', () => {
    rejects('server://[127.0.0.1]:10101/:8080', 'tunnel address', 'IPv6');
    rejects('server://[::1]10101/:8080', 'tunnel address', '[ipv6]:port');
  });

  test('an invalid host name is rejected', () => {
    rejects('client://127.0.0.1:1080/bad_host!:80', 'target address', 'invalid host');
  });

  test('a missing target is rejected', () => {
    rejects('server://:10101', 'target', 'target address is required');
    rejects('server://:10101/', 'target', 'target address is required');
    rejects('client://127.0.0.1:1080/?log=info', 'target', 'target address is required');
  });

  test('an empty member of a target group is rejected', () => {
    rejects('client://127.0.0.1:1080/a:80,', 'target address', 'target address');
  });

  test('an unsupported scheme is rejected', () => {
    rejects('http://127.0.0.1:1080/a:80', 'scheme', '"http"', 'server, client, master');
    rejects('tcp://127.0.0.1:1080/a:80', 'scheme', '"tcp"');
  });

  test('something that is not a URL is rejected', () => {
    rejects('127.0.0.1:1080', 'url', 'invalid URL');
    rejects('', 'url', 'invalid URL');
  });
});

describe('tunnel URL: loop guard', () => {
  test('a loopback target on the tunnel port conflicts', () => {
    rejects('server://127.0.0.1:10101/127.0.0.1:10101', 'target', 'conflicts');
    rejects('client://10.0.0.1:10101/127.0.0.1:10101', 'target', 'conflicts');
    rejects('server://:10101/127.0.0.2:10101', 'target', 'conflicts');
    rejects('server://:10101/localhost:10101', 'target', 'conflicts');
    rejects('server://[::]:10101/[::1]:10101', 'target', 'conflicts');
  });

  test('an unspecified target on the tunnel port conflicts', () => {
    rejects('server://:10101/:10101', 'target', 'conflicts');
    rejects('server://0.0.0.0:10101/0.0.0.0:10101', 'target', 'conflicts');
  });

  test('the same host and port for tunnel and target conflicts', () => {
    rejects('client://10.0.0.1:10101/10.0.0.1:10101', 'target', 'conflicts');
  });

  test('any member of a target group can conflict', () => {
    rejects('server://:10101/10.0.0.5:80,127.0.0.1:10101', 'target', 'conflicts', '127.0.0.1:10101');
  });

  test('an unspecified tunnel host with any target on the tunnel port conflicts (NodePass rule)', () => {
    // NodePass: targetPort == tunnelPort && (target.IsLoopback() || tunnel.IsUnspecified()).
    rejects('server://:10101/10.0.0.5:10101', 'target', 'conflicts');
    rejects('server://0.0.0.0:10101/10.0.0.5:10101', 'target', 'conflicts');
    rejects('server://[::]:10101/[2001:db8::5]:10101', 'target', 'conflicts');
  });

  test('a loopback target on another port is fine', () => {
    assert.deepEqual(tunnel('server://:10101/127.0.0.1:10102').targets, [{ host: '127.0.0.1', port: 10102 }]);
  });

  test('a remote target on the tunnel port is fine when the tunnel host is specified', () => {
    assert.deepEqual(tunnel('client://10.0.0.1:10101/10.0.0.5:10101').targets, [{ host: '10.0.0.5', port: 10101 }]);
  });
});

describe('master URL', () => {
  test('the prefix defaults to /api', () => {
    const url = master('master://:9090');
    assert.deepEqual(url.listen, { host: '', port: 9090 });
    assert.equal(url.prefix, '/api');
    assert.deepEqual(url.params, { log: 'info', tls: 0, crt: '', key: '' });
    assert.equal(master('master://:9090/').prefix, '/api');
  });

  test('a custom prefix is kept without its trailing slash', () => {
    assert.equal(master('master://127.0.0.1:9090/admin').prefix, '/admin');
    assert.equal(master('master://127.0.0.1:9090/admin/').prefix, '/admin');
    assert.equal(master('master://[::1]:9090/a/b.c_d~e-f').prefix, '/a/b.c_d~e-f');
  });

  test('log, tls, crt and key are read', () => {
    const url = master('master://0.0.0.0:9090/api?log=debug&tls=2&crt=/c.pem&key=/k.pem');
    assert.deepEqual(url.listen, { host: '0.0.0.0', port: 9090 });
    assert.deepEqual(url.params, { log: 'debug', tls: 2, crt: '/c.pem', key: '/k.pem' });
    assert.equal(master('master://:9090?tls=1').params.tls, 1);
  });

  test('tunnel-only parameters do not apply to a master', () => {
    rejects('master://:9090?dns=5m', 'dns', '"dns"', 'master://');
    rejects('master://:9090?mode=1', 'mode', '"mode"');
  });

  test('bad master parameters are rejected', () => {
    rejects('master://:9090?log=verbose', 'log', 'log:', 'none, debug, info, warn, error, event');
    rejects('master://:9090?tls=3', 'tls', 'tls:', '0, 1, 2');
    rejects('master://:9090?tls=2', 'tls', 'tls=2');
    rejects('master://:9090?bogus=1', 'bogus', 'unknown parameter');
  });

  test('a bad prefix or address is rejected', () => {
    rejects('master://:9090/a%20b', 'prefix', 'API prefix');
    rejects('master://:9090//x', 'prefix', 'API prefix');
    rejects('master://host/api', 'master address', 'master address', 'no port');
    rejects('master://:0/api', 'master address', 'master address');
  });
});
