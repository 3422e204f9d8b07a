// Bundles the compiled CLI (dist/src/processor.js, the same code the tests run) into
// dist/processor.js. Loading ~80 small modules cost about as much as the work of a --validate;
// one bundle starts in a fraction of that. Connector client libraries stay external and are
// still imported only by the connectors that use them.
import { build } from 'esbuild';
import { readFileSync, rmSync } from 'node:fs';

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
// Bundled: what every start needs. Everything else loads from node_modules when used.
const BUNDLED = new Set(['yaml', 'fastest-levenshtein', 'p-limit', 'yocto-queue']);
const external = Object.keys(pkg.dependencies).filter((name) => !BUNDLED.has(name));

// Chunk names carry a content hash: drop the previous build's so they do not pile up.
rmSync('dist/chunks', { recursive: true, force: true });

await build({
  entryPoints: { processor: 'dist/src/processor.js' },
  outdir: 'dist',
  chunkNames: 'chunks/[name]-[hash]',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  external,
  // CommonJS packages bundled into ESM require() Node built-ins; give them a require.
  banner: { js: "#!/usr/bin/env node\nimport { createRequire as __createRequire } from 'node:module';\nconst require = __createRequire(import.meta.url);" },
  sourcemap: 'linked',
  logLevel: 'warning',
});
