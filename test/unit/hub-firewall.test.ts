import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { explainRule, Firewall, FirewallRuleError } from '../../src/hub/firewall.js';

describe('hub firewall (FwRule semantics)', () => {
  test('no rules allow everyone', () => {
    const fw = new Firewall([]);
    assert.equal(fw.allows('1.2.3.4'), true);
    assert.equal(fw.allows('::1'), true);
  });

  test('allow-only lists deny everyone else', () => {
    const fw = new Firewall([{ sequence: 1, action: 'allow', network: '10.0.0.0/8' }]);
    assert.equal(fw.allows('10.1.2.3'), true);
    assert.equal(fw.allows('::ffff:10.9.9.9'), true, 'IPv4-mapped IPv6 is matched as IPv4');
    assert.equal(fw.allows('11.0.0.1'), false);
    assert.equal(fw.allows('::1'), false);
  });

  test('drop-only lists allow everyone else', () => {
    const fw = new Firewall([{ sequence: 1, action: 'drop', network: '127.0.0.1/32' }]);
    assert.equal(fw.allows('127.0.0.1'), false);
    assert.equal(fw.allows('127.0.0.2'), true);
  });

  test('mixed lists: first match in sequence order, default is the opposite of the last rule', () => {
    const fw = new Firewall([
      { sequence: 2, action: 'drop', network: '10.0.0.0/8' },
      { sequence: 1, action: 'allow', network: '10.1.0.0/16' },
    ]);
    assert.equal(fw.allows('10.1.2.3'), true, 'sequence 1 wins over the broader drop');
    assert.equal(fw.allows('10.2.0.1'), false);
    assert.equal(fw.allows('192.168.0.1'), true, 'last rule drops, so the default allows');
    const endsInAllow = new Firewall([
      { sequence: 1, action: 'drop', network: '10.1.0.0/16' },
      { sequence: 2, action: 'allow', network: '10.0.0.0/8' },
    ]);
    assert.equal(endsInAllow.allows('10.1.0.1'), false);
    assert.equal(endsInAllow.allows('10.2.0.1'), true);
    assert.equal(endsInAllow.allows('192.168.0.1'), false, 'last rule allows, so the default denies');
  });

  test('sequence 0 means unspecified: after numbered rules, in array order', () => {
    const fw = new Firewall([
      { sequence: 0, action: 'drop', network: '10.0.0.1/32' },
      { sequence: 5, action: 'allow', network: '10.0.0.0/24' },
    ]);
    assert.equal(fw.allows('10.0.0.1'), true);
  });

  test('IPv6 networks and hosts', () => {
    const fw = new Firewall([
      { sequence: 1, action: 'allow', network: '::1/128' },
      { sequence: 2, action: 'allow', network: '2001:db8::/32' },
    ]);
    assert.equal(fw.allows('::1'), true);
    assert.equal(fw.allows('2001:db8:1::5'), true);
    assert.equal(fw.allows('2001:db9::1'), false);
    assert.equal(fw.allows('127.0.0.1'), false);
    assert.equal(new Firewall([{ sequence: 1, action: 'allow', network: '::1' }]).allows('::1'), true);
  });

  test('invalid rules are explained and refused', () => {
    assert.match(explainRule({ sequence: 1, action: 'allow', network: '10.0.0.0/33' }) ?? '', /prefix/);
    assert.match(explainRule({ sequence: 1, action: 'allow', network: 'example.com' }) ?? '', /not an IPv4/);
    assert.match(explainRule({ sequence: 1, action: 'block' as 'drop', network: '1.1.1.1' }) ?? '', /action/);
    assert.match(explainRule({ sequence: -1, action: 'drop', network: '1.1.1.1' }) ?? '', /sequence/);
    assert.equal(explainRule({ sequence: 1, action: 'drop', network: '1.1.1.1/32' }), undefined);
    assert.throws(() => new Firewall([{ sequence: 1, action: 'allow', network: 'x' }]), FirewallRuleError);
  });
});
