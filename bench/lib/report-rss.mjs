// Preloaded with `node --import` into a measured child: at exit, the process writes its own peak
// RSS (process.resourceUsage().maxRSS, KiB) to $BENCH_RSS_FILE, so the processor's CLI can be
// measured without changing it.
import { writeFileSync } from 'node:fs';

const target = process.env.BENCH_RSS_FILE;
if (target) process.on('exit', () => writeFileSync(target, String(process.resourceUsage().maxRSS)));
