import { consoleHarness } from './console-harness.js';
import { fileHarness } from './file-harness.js';
import type { TargetHarness } from './harness.js';
import { s3Harness } from './s3-harness.js';

/**
 * Every export target the contract suite runs against. A new connector joins by adding its
 * harness here (a PostgreSQL harness reads PG* from the environment, as node-postgres does).
 */
export const TARGETS: readonly (() => TargetHarness)[] = [fileHarness, consoleHarness, s3Harness];
