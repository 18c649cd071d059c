#!/usr/bin/env node
// Builds the optional splice(2) relay addon (native/splice-relay) with node-gyp. Porthole works without it (the JS
// relay takes over), so any failure prints one warning line and exits 0: `npm ci` must never fail because of it.
// Runs as package.json's `install` script; `node scripts/build-native.mjs --strict` exits 1 on failure instead.
//
// node-gyp is the copy npm ships (npm passes its path as npm_config_node_gyp); headers come from the local Node
// install when it has them, so the build needs no network.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const strict = process.argv.includes('--strict');
const addonDir = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'native', 'splice-relay');

function warn(reason) {
  process.stderr.write(`porthole: optional splice relay addon not built (${reason}); the JS relay will be used\n`);
  process.exit(strict ? 1 : 0);
}

if (process.platform !== 'linux') warn(`splice(2) is Linux-only, this is ${process.platform}`);
if (process.env.PORTHOLE_SKIP_NATIVE === '1') warn('PORTHOLE_SKIP_NATIVE=1');

function findNodeGyp() {
  const candidates = [process.env.npm_config_node_gyp];
  if (process.env.npm_execpath) {
    candidates.push(join(dirname(process.env.npm_execpath), '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  }
  const prefix = resolve(dirname(process.execPath), '..');
  candidates.push(join(prefix, 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  return candidates.find((p) => p !== undefined && p !== '' && existsSync(p));
}

function findNodeDir() {
  if (process.env.npm_config_nodedir) return process.env.npm_config_nodedir;
  const prefix = resolve(dirname(process.execPath), '..');
  return existsSync(join(prefix, 'include', 'node', 'node_api.h')) ? prefix : undefined;
}

const nodeGyp = findNodeGyp();
if (nodeGyp === undefined) warn('node-gyp not found');
const nodeDir = findNodeDir();
const args = [nodeGyp, 'rebuild', '--silent', ...(nodeDir ? [`--nodedir=${nodeDir}`] : [])];
const result = spawnSync(process.execPath, args, { cwd: addonDir, encoding: 'utf8', timeout: 180_000 });
if (result.status !== 0) {
  const output = `${result.stdout ?? ''}${result.stderr ?? ''}`.trim().split('\n');
  const firstError = output.find((line) => /error|ERR!/.test(line)) ?? result.error?.message ?? 'node-gyp failed';
  warn(firstError.trim().slice(0, 200));
}
