// Runs node's test runner on test/{unit,e2e}/**/*.test.ts through tsx. Node 20 has no glob support in --test, so
// the files are listed here. Usage: node scripts/run-tests.mjs [unit|e2e] [extra node --test flags]
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const suites = ['unit', 'e2e'];
const args = process.argv.slice(2);
const picked = args.filter((a) => suites.includes(a));
const flags = args.filter((a) => !suites.includes(a));

function collect(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...collect(path));
    else if (name.endsWith('.test.ts')) out.push(path);
  }
  return out;
}

const files = (picked.length > 0 ? picked : suites).flatMap((s) => collect(join('test', s)));
const result = spawnSync(
  process.execPath,
  ['--import', 'tsx', '--test', '--test-timeout=120000', '--test-concurrency=1', ...flags, ...files],
  { stdio: 'inherit' },
);
process.exit(result.status ?? 1);
