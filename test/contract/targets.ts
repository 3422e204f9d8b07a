import { consoleHarness } from './console-harness.js';
import { fileHarness } from './file-harness.js';
import type { TargetHarness } from './harness.js';
import { postgresqlHarness } from './postgresql-harness.js';
import { redisHarness } from './redis-harness.js';
import { restHarness } from './rest-harness.js';
import { s3Harness } from './s3-harness.js';

/**
 * Every export target the contract suite runs against. A new connector joins by adding its
 * harness here (the PostgreSQL harness uses TEST_DATABASE_URL, as the other PostgreSQL tests do).
 */
export const TARGETS: readonly (() => TargetHarness)[] = [fileHarness, consoleHarness, postgresqlHarness, restHarness, redisHarness, s3Harness];
