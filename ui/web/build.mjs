// Builds the UI into ../assets: app.js and layout-worker.js bundled and
// minified by esbuild, index.html and style.css copied. The output depends
// only on the sources and the locked packages, so the committed assets can
// be checked against them (see ../assets/SOURCES.sum and tools/websum).
import { build } from 'esbuild';
import { copyFileSync, mkdirSync, readdirSync, rmSync } from 'node:fs';

const out = new URL('../assets/', import.meta.url).pathname;
mkdirSync(out, { recursive: true });
for (const f of readdirSync(out)) {
  if (f !== 'SOURCES.sum') rmSync(out + f);
}
const common = { bundle: true, minify: true, format: 'iife', target: ['es2020'], legalComments: 'eof', logLevel: 'warning' };
await build({ ...common, entryPoints: ['src/main.js'], outfile: out + 'app.js' });
await build({ ...common, entryPoints: ['src/layout-worker.js'], outfile: out + 'layout-worker.js' });
copyFileSync('src/index.html', out + 'index.html');
copyFileSync('src/style.css', out + 'style.css');
