// recorder/ public API: record sessions into trace files; open them; the schema.
export { record, openRecordWriter, resolveTarget, RecordInputError, DEFAULT_MAX_INSTRUCTIONS, type RecordTarget, type RecordOptions, type RecordProgress, type SessionSummary, type RecordWriter } from './record.js';
export { openTraceForReading, openTraceForWriting, traceName, TraceFileError } from './file.js';
export { SCHEMA_VERSION, schemaSql, EVENT_TABLES, COMMON_COLUMNS, EFFECTS_FORMAT } from './schema.js';
export { packEffects, unpackEffects, type UnpackedEffects } from '../core/index.js';
export { NTFLOW_VERSION } from './version.js';
export { InstructionRuns, MAX_RUN, decodeRunEffects, encodeEffectsList, encodeRunEffects, effectsAt, instructionsInRangeSql, RunFormatError, type RunEffects } from './runs.js';
export { expandRunsSql, RUN_INDEX_SQL, RUN_CODE_SQL, BlockEncoder, expandBlocks, type NewBlock } from './blocks.js';
