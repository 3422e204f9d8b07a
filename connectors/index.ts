import { csvSource } from './csv/csv-source.js';
import { postgresSource } from './postgres/postgres-source.js';
import { restSource } from './rest/rest-source.js';
import { consoleSink } from './console/console-sink.js';
import { fileSink } from './file/file-sink.js';
import { postgresSink } from './postgres/postgres-sink.js';
import { restSink } from './rest/rest-sink.js';
import { redisSink } from './redis/redis-sink.js';
import { s3Sink } from './s3/s3-sink.js';
import type { SinkSpec, SourceSpec } from './types.js';

/**
 * Every connector, listed here and nowhere else. A spec file is light: a connector's client
 * library is imported inside its create(), so a config that names no S3 target never loads the
 * AWS SDK.
 */
export const SOURCES: readonly SourceSpec[] = [csvSource, postgresSource, restSource];
export const SINKS: readonly SinkSpec[] = [consoleSink, fileSink, postgresSink, restSink, s3Sink, redisSink];

export function sourceSpec(type: string): SourceSpec | undefined {
  return SOURCES.find((s) => s.type === type);
}

export function sinkSpec(type: string): SinkSpec | undefined {
  return SINKS.find((s) => s.type === type);
}
