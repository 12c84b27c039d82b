// The Perfetto TrackEvent protobuf (.perfetto-trace / .pftrace), opened by ui.perfetto.dev and
// trace_processor. A trace is `Trace { repeated TracePacket packet = 1; }`, so each packet written
// alone as `Trace{packet: [p]}` (its field-1 tag, length, bytes) concatenates into a valid Trace:
// the exporter writes packet by packet and holds only the open slices.
//
// Tracks: a process track per guest process, a thread track per guest thread (its call frames as
// nested slices, its MSR reads, SSDT lookups, APC checks and call returns as instants), and under
// each thread with system calls a child track (parent_uuid) for them — a system call runs from the
// entering instruction to the return, which need not nest with the frames around it. Flow arrows
// (flow_ids / terminating_flow_ids) go from each system call to its service routine's frame and on
// to the return. One trusted_packet_sequence_id; nothing is interned, so no incremental state.
import { createRequire } from 'node:module';
import type protobuf from 'protobufjs';
import { readTimeline, TS_UNIT, type Args, type FlowRef, type Slice, type Timeline } from './model.js';
import type { ExportRequest, ExportSink, ExportStats } from './types.js';

// The subset of Perfetto's protos used here, with their real field numbers (google/perfetto):
//  protos/perfetto/trace/trace.proto                      Trace.packet = 1
//  protos/perfetto/trace/trace_packet.proto               TracePacket timestamp = 8, track_event = 11,
//      trusted_packet_sequence_id = 10, sequence_flags = 13 (SEQ_INCREMENTAL_STATE_CLEARED = 1),
//      track_descriptor = 60
//  protos/perfetto/trace/track_event/track_descriptor.proto  uuid = 1, name = 2, process = 3,
//      thread = 4, parent_uuid = 5
//  .../process_descriptor.proto  pid = 1, process_name = 6
//  .../thread_descriptor.proto   pid = 1, tid = 2, thread_name = 5
//  .../track_event.proto         debug_annotations = 4, type = 9 (TYPE_SLICE_BEGIN 1, TYPE_SLICE_END 2,
//      TYPE_INSTANT 3), track_uuid = 11, categories = 22, name = 23, flow_ids = 47 (fixed64),
//      terminating_flow_ids = 48 (fixed64)
//  .../debug_annotation.proto    bool_value = 2, uint_value = 3, int_value = 4, string_value = 6, name = 10
export const PERFETTO_PROTO = `
syntax = "proto2";
package perfetto.protos;

message Trace {
  repeated TracePacket packet = 1;
}

message TracePacket {
  optional uint64 timestamp = 8;
  optional uint32 trusted_packet_sequence_id = 10;
  optional TrackEvent track_event = 11;
  optional uint32 sequence_flags = 13;
  optional TrackDescriptor track_descriptor = 60;
}

message TrackDescriptor {
  optional uint64 uuid = 1;
  optional string name = 2;
  optional ProcessDescriptor process = 3;
  optional ThreadDescriptor thread = 4;
  optional uint64 parent_uuid = 5;
}

message ProcessDescriptor {
  optional int32 pid = 1;
  optional string process_name = 6;
}

message ThreadDescriptor {
  optional int32 pid = 1;
  optional int32 tid = 2;
  optional string thread_name = 5;
}

message TrackEvent {
  enum Type {
    TYPE_UNSPECIFIED = 0;
    TYPE_SLICE_BEGIN = 1;
    TYPE_SLICE_END = 2;
    TYPE_INSTANT = 3;
  }
  repeated DebugAnnotation debug_annotations = 4;
  optional Type type = 9;
  optional uint64 track_uuid = 11;
  repeated string categories = 22;
  optional string name = 23;
  repeated fixed64 flow_ids = 47;
  repeated fixed64 terminating_flow_ids = 48;
}

message DebugAnnotation {
  optional bool bool_value = 2;
  optional uint64 uint_value = 3;
  optional int64 int_value = 4;
  optional string string_value = 6;
  optional string name = 10;
}
`;

export const SEQUENCE_ID = 1;
const SEQ_INCREMENTAL_STATE_CLEARED = 1;
const TYPE = { begin: 1, end: 2, instant: 3 } as const;

let traceType: protobuf.Type | null = null;
/** The Trace message type of PERFETTO_PROTO (parsed once). */
export function perfettoTraceType(): protobuf.Type {
  // protobufjs loads on the first Perfetto export only (its import costs every command ~60 ms at start).
  const pb = createRequire(import.meta.url)('protobufjs') as typeof protobuf;
  traceType ??= pb.parse(PERFETTO_PROTO, { keepCase: true }).root.lookupType('perfetto.protos.Trace');
  return traceType;
}

/** Track uuids: distinct ranges per kind, derived from the guest's ids so they are stable. */
export const trackUuid = {
  meta: 1,
  process: (pid: number) => pid * 4 + 16,
  thread: (tid: number) => tid * 4 + 17,
  syscalls: (tid: number) => tid * 4 + 18,
};

function annotations(args: Args): object[] {
  return Object.entries(args).map(([name, v]) =>
    typeof v === 'boolean' ? { name, bool_value: v } : typeof v === 'number' ? (Number.isInteger(v) ? { name, int_value: v } : { name, string_value: String(v) }) : { name, string_value: v },
  );
}

function flowFields(flows: FlowRef[]): object {
  const flow_ids = flows.filter((f) => f.role !== 'end').map((f) => f.id);
  const terminating_flow_ids = flows.filter((f) => f.role === 'end').map((f) => f.id);
  return { ...(flow_ids.length ? { flow_ids } : {}), ...(terminating_flow_ids.length ? { terminating_flow_ids } : {}) };
}

function trackOf(slice: Slice): number {
  return slice.lane === 'syscalls' ? trackUuid.syscalls(slice.tid) : trackUuid.thread(slice.tid);
}

export function exportPerfetto(req: ExportRequest, sink: ExportSink): ExportStats {
  const timeline = readTimeline(req.db, req.sessionId, req.syscallId);
  return writePerfetto(timeline, sink);
}

export function writePerfetto(timeline: Timeline, sink: ExportSink): ExportStats {
  const Trace = perfettoTraceType();
  let first = true;
  let packets = 0;
  // Packets are gathered into ~64 KiB writes: one sink.write per packet would be a system call each.
  let pending: Uint8Array[] = [];
  let pendingBytes = 0;
  const flush = (): void => {
    if (pendingBytes === 0) return;
    sink.write(Buffer.concat(pending, pendingBytes));
    pending = [];
    pendingBytes = 0;
  };
  const emit = (packet: Record<string, unknown>): void => {
    const p = { trusted_packet_sequence_id: SEQUENCE_ID, ...packet, ...(first ? { sequence_flags: SEQ_INCREMENTAL_STATE_CLEARED } : {}) };
    first = false;
    packets++;
    const bytes = Trace.encode({ packet: [p] }).finish();
    pending.push(bytes);
    pendingBytes += bytes.byteLength;
    if (pendingBytes >= 1 << 16) flush();
  };

  // The unit, said where a reader of the trace sees it: a global track's name and an instant's annotations.
  const what = timeline.syscallId === undefined ? `session ${timeline.sessionId}` : `session ${timeline.sessionId}, syscall ${timeline.syscallId}`;
  emit({ track_descriptor: { uuid: trackUuid.meta, name: `ntflow ${timeline.session.name} (${what}): ts = instructions retired` } });
  for (const p of timeline.processes) emit({ track_descriptor: { uuid: trackUuid.process(p.pid), process: { pid: p.pid, process_name: p.name } } });
  for (const t of timeline.threads) {
    // A thread track joins its process through ThreadDescriptor.pid (no parent_uuid: that is for
    // tracks that are not the thread's own, like its system-call lane below).
    emit({ track_descriptor: { uuid: trackUuid.thread(t.tid), thread: { pid: t.pid, tid: t.tid, thread_name: t.name } } });
    if (timeline.syscallThreads.has(t.tid)) emit({ track_descriptor: { uuid: trackUuid.syscalls(t.tid), parent_uuid: trackUuid.thread(t.tid), name: `system calls of thread ${t.tid}` } });
  }
  emit({
    timestamp: timeline.start,
    track_event: {
      type: TYPE.instant,
      track_uuid: trackUuid.meta,
      categories: ['ntflow'],
      name: 'ntflow trace',
      debug_annotations: annotations({ ts_unit: TS_UNIT, session: timeline.sessionId, session_name: timeline.session.name, program: timeline.session.program, instructions: timeline.session.instructions, ...(timeline.syscallId === undefined ? {} : { syscall_id: timeline.syscallId }) }),
    },
  });

  let slices = 0;
  let instants = 0;
  for (const ev of timeline.events()) {
    if (ev.type === 'begin') {
      slices++;
      emit({
        timestamp: ev.ts,
        track_event: { type: TYPE.begin, track_uuid: trackOf(ev.slice), categories: [ev.slice.category, ev.slice.lane], name: ev.slice.name, debug_annotations: annotations(ev.slice.args), ...flowFields(ev.flows) },
      });
    } else if (ev.type === 'end') {
      emit({ timestamp: ev.ts, track_event: { type: TYPE.end, track_uuid: trackOf(ev.slice) } });
    } else {
      instants++;
      emit({
        timestamp: ev.ts,
        track_event: { type: TYPE.instant, track_uuid: trackUuid.thread(ev.tid), categories: [ev.category], name: ev.name, debug_annotations: annotations(ev.args), ...flowFields(ev.flows) },
      });
    }
  }
  flush();
  return { format: 'perfetto', items: slices + instants, notes: [`${slices} slices, ${instants} instants, ${packets} packets`] };
}
