// Bundles the dashboard (web/) into dist/web/: assets/ with content-hashed names (cached forever by the browser)
// and index.html that names them. Run by `npm run build` / `prepare` after tsc. Usage: node scripts/build-web.mjs
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'dist', 'web');
const assets = join(out, 'assets');
rmSync(out, { recursive: true, force: true });
mkdirSync(assets, { recursive: true });

const result = await build({
  entryPoints: [join(root, 'web', 'src', 'main.tsx')],
  bundle: true,
  minify: true,
  sourcemap: 'linked',
  format: 'esm',
  target: ['chrome100', 'firefox100', 'safari15'],
  jsx: 'automatic',
  jsxImportSource: 'preact',
  outdir: assets,
  entryNames: '[name]-[hash]',
  assetNames: '[name]-[hash]',
  metafile: true,
  legalComments: 'linked',
  logLevel: 'warning',
});

const outputs = Object.keys(result.metafile.outputs).map((p) => basename(p));
const js = outputs.filter((f) => f.endsWith('.js'));
const css = outputs.filter((f) => f.endsWith('.css'));
const html = readFileSync(join(root, 'web', 'index.html'), 'utf8')
  .replace('<!--STYLES-->', css.map((f) => `<link rel="stylesheet" href="__ASSETS__/${f}">`).join('\n'))
  .replace('<!--SCRIPTS-->', js.map((f) => `<script type="module" src="__ASSETS__/${f}"></script>`).join('\n'));
writeFileSync(join(out, 'index.html'), html);
const size = (f) => readFileSync(join(assets, f)).length;
console.log(`dashboard: ${[...js, ...css].map((f) => `${f} ${(size(f) / 1024).toFixed(1)} KiB`).join(', ')}`);
