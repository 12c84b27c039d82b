// analyzer/ public API: rebuild projections from the log (replay). One export line per feature.
export { replaySession, replayFile, ensureProjections, openWithProjections, foldLive, staleSessions, projectionSchemaSql, PROJECTIONS, PROJECTIONS_TABLE, ReplayInputError, type ReplayOptions, type ReplayProgress, type ReplayResult, type ProjectionResult } from './replay.js';
export { digestOf, rowWriter, tableSql, type Projection, type ProjectionTable, type ProjectionColumn } from './projections/table.js';
export { readLog, makeContext, readCodeTable, flowOf, Flow, COLUMN, type LogEvent, type LogEventType, type LogContext, type CodeTable } from './projections/log.js';
export { foldSyscalls, syscallRow, SYSCALLS, SYSCALLS_TABLE, type SyscallRecord, type SyscallTableRow, type HandleUse } from './projections/syscalls.js';
export { foldSyscallArgs, argRows, SYSCALL_ARGS, SYSCALL_ARGS_TABLE } from './projections/syscall-args.js';
export { foldCalls, CALLS, CALLS_TABLE } from './projections/calls.js';
export { foldRingSpans, RING_SPANS, RING_SPANS_TABLE } from './projections/ring-spans.js';
export { symbolRows, SYMBOLS, SYMBOLS_TABLE } from './projections/symbols.js';
export { stateAt, resolveSession, sessionSymbols, formatRegisters, formatMemory, disassembleAt, stateJson, callStackAt, formatCallStack, openHandlesAt, formatHandles, type MachineState, type StackFrame, type OpenHandle } from './state.js';
export { eventAt, eventEip, type EventAt } from './events.js';
export { verifySession, formatVerifyResult, VerifyError, type VerifyResult } from './verify.js';
export { QueryError, QUERY_FORMATS, escapeGuestText, escapeReport, openForQuery, chooseSession, registerFunctions, prepareReadOnly, streamRows, runQuery, schemaText, tableNames, type QueryFormat, type QueryOptions, type Output } from './query.js';
export { NAMED_QUERIES, findNamedQuery, namedQueryList, requireProjections, checkSyscall, type NamedQuery } from './named.js';
export { chooseSessionFor, parseSyscallRef, syscallRefs, type SyscallRef } from './syscall-ref.js';
export { sessionFacts, narrateSession, describeCall, type SessionFacts, type CallFact, type HandleFact, type ProbeFact } from './narrate.js';
export { buildFindings, explainSession, formatExplained, readFindings, FINDINGS, FINDINGS_TABLE, HOOKS, HOOKS_TABLE, type Finding, type Hook, type FindingRow, type Explained, type EvidenceEvent } from './findings/index.js';
export { diffSessions, formatDiff, type DiffResult, type DiffSide, type PairInfo, type Divergence } from './diff/index.js';
