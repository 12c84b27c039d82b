// The Perfetto export on three recorded scenarios, decoded two ways: with protobufjs and the
// exporter's own .proto subset, and with a wire-format walker written here (independent of
// protobufjs; protoc is not installed on this machine, so `protoc --decode_raw` is not used).
// Checks: one sequence, tracks described before use, slices balanced per track, timestamps
// non-decreasing, every flow with both ends, the guest's processes and threads, every system call
// with its status, and one instant per MSR read, SSDT lookup and APC check of the trace.
import t, { type Test } from 'tap';
import { perfettoTraceType, SEQUENCE_ID, trackUuid } from '../export/index.js';
import { exportToBuffer, queryTrace, recordExportTrace } from './util/export.js';

const dir = t.testdir();
let trace = '';
t.before(async () => {
  trace = await recordExportTrace(dir);
});

interface Annotation {
  name: string;
  int_value?: number;
  string_value?: string;
  bool_value?: boolean;
}
interface Packet {
  timestamp?: number;
  trusted_packet_sequence_id?: number;
  sequence_flags?: number;
  track_descriptor?: { uuid: number; parent_uuid?: number; name?: string; process?: { pid: number; process_name: string }; thread?: { pid: number; tid: number; thread_name: string } };
  track_event?: { type: number; track_uuid: number; categories?: string[]; name?: string; debug_annotations?: Annotation[]; flow_ids?: number[]; terminating_flow_ids?: number[] };
}

function decode(bytes: Buffer): Packet[] {
  const Trace = perfettoTraceType();
  const obj = Trace.toObject(Trace.decode(bytes), { longs: Number, enums: Number, defaults: false, arrays: true }) as { packet: Packet[] };
  return obj.packet;
}

const arg = (ev: Packet['track_event'], name: string): string | number | boolean | undefined => {
  const a = ev?.debug_annotations?.find((x) => x.name === name);
  return a?.string_value ?? a?.int_value ?? a?.bool_value;
};

/** A protobuf wire-format walker (varint, fixed64, length-delimited, fixed32): [field, wire, value] per field. */
function walk(buf: Uint8Array): [number, number, bigint | Uint8Array][] {
  const out: [number, number, bigint | Uint8Array][] = [];
  let i = 0;
  const varint = (): bigint => {
    let v = 0n;
    let shift = 0n;
    for (;;) {
      if (i >= buf.length) throw new Error('truncated varint');
      const b = buf[i++];
      v |= BigInt(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
      shift += 7n;
    }
  };
  while (i < buf.length) {
    const tag = Number(varint());
    const field = tag >>> 3;
    const wire = tag & 7;
    if (wire === 0) out.push([field, wire, varint()]);
    else if (wire === 1) {
      out.push([field, wire, buf.subarray(i, i + 8)]);
      i += 8;
    } else if (wire === 2) {
      const n = Number(varint());
      if (i + n > buf.length) throw new Error(`field ${field}: length ${n} past the end`);
      out.push([field, wire, buf.subarray(i, i + n)]);
      i += n;
    } else if (wire === 5) {
      out.push([field, wire, buf.subarray(i, i + 4)]);
      i += 4;
    } else throw new Error(`field ${field}: wire type ${wire} not used by TracePacket`);
  }
  return out;
}

function checkStructure(t: Test, packets: Packet[]): void {
  t.ok(packets.every((p) => p.trusted_packet_sequence_id === SEQUENCE_ID), 'every packet on one trusted_packet_sequence_id');
  t.equal(packets[0].sequence_flags, 1, 'the first packet says SEQ_INCREMENTAL_STATE_CLEARED');
  const described = new Set<number>();
  let lastTs = -1;
  const stacks = new Map<number, string[]>();
  const flowSeen = new Map<number, { begins: number; ends: number; firstAt: number; endAt: number }>();
  let problems: string[] = [];
  packets.forEach((p, i) => {
    if (p.track_descriptor) {
      const d = p.track_descriptor;
      if (described.has(d.uuid)) problems.push(`track ${d.uuid} described twice`);
      if (d.parent_uuid !== undefined && !described.has(d.parent_uuid)) problems.push(`track ${d.uuid}'s parent ${d.parent_uuid} not described before it`);
      described.add(d.uuid);
    }
    const ev = p.track_event;
    if (!ev) return;
    if (p.timestamp === undefined) problems.push(`packet ${i}: a track event without a timestamp`);
    else {
      if (p.timestamp < lastTs) problems.push(`packet ${i}: ts ${p.timestamp} < ${lastTs}`);
      lastTs = p.timestamp;
    }
    if (!described.has(ev.track_uuid)) problems.push(`packet ${i}: track ${ev.track_uuid} not described`);
    const st = stacks.get(ev.track_uuid) ?? [];
    stacks.set(ev.track_uuid, st);
    if (ev.type === 1) st.push(ev.name ?? '');
    else if (ev.type === 2) {
      if (st.length === 0) problems.push(`packet ${i}: SLICE_END on track ${ev.track_uuid} with nothing open`);
      st.pop();
    } else if (ev.type !== 3) problems.push(`packet ${i}: event type ${ev.type}`);
    for (const id of ev.flow_ids ?? []) {
      const f = flowSeen.get(id) ?? { begins: 0, ends: 0, firstAt: i, endAt: -1 };
      f.begins++;
      flowSeen.set(id, f);
    }
    for (const id of ev.terminating_flow_ids ?? []) {
      const f = flowSeen.get(id) ?? { begins: 0, ends: 0, firstAt: i, endAt: -1 };
      f.ends++;
      f.endAt = i;
      flowSeen.set(id, f);
    }
  });
  for (const [uuid, st] of stacks) if (st.length) problems.push(`track ${uuid}: ${st.length} slices never ended (${st.join(', ')})`);
  for (const [id, f] of flowSeen) {
    if (f.begins === 0) problems.push(`flow ${id} ends but never starts`);
    if (f.ends !== 1) problems.push(`flow ${id} has ${f.ends} terminating events`);
    if (f.endAt <= f.firstAt) problems.push(`flow ${id} ends before it starts`);
  }
  t.same(problems, [], 'descriptors before use, balanced slices, non-decreasing ts, flows with both ends');
  problems = [];
  t.ok(flowSeen.size > 0, 'there are flows');
}

t.test('osr-log-user-handle: processes, threads, system calls, frames, instants, flows', async (t) => {
  const { bytes, stats } = exportToBuffer(trace, 'perfetto', 'osr-log-user-handle');
  const packets = decode(bytes);
  checkStructure(t, packets);
  t.equal(stats.format, 'perfetto');

  const procs = packets.filter((p) => p.track_descriptor?.process).map((p) => p.track_descriptor!.process!);
  t.same(procs.map((p) => p.process_name).sort(), ['System', 'osr-log-user.exe'], 'a process track per guest process');
  const threads = packets.filter((p) => p.track_descriptor?.thread).map((p) => p.track_descriptor!.thread!);
  t.same(threads.map((th) => th.tid).sort((a, b) => a - b), [8, 1996], 'a thread track per guest thread');
  t.ok(threads.every((th) => procs.some((p) => p.pid === th.pid)), "every thread's pid is a described process");
  t.match(threads.find((th) => th.tid === 1996)!.thread_name, /osr-log-user\.exe/);
  const syscallTracks = packets.filter((p) => p.track_descriptor?.name?.startsWith('system calls')).map((p) => p.track_descriptor!);
  t.same(syscallTracks.map((d) => d.parent_uuid).sort(), [trackUuid.thread(8), trackUuid.thread(1996)].sort(), "each thread's system calls on a child track of it");
  t.ok(packets.some((p) => p.track_descriptor?.name?.includes('ts = instructions retired')), 'the unit is said in a track name');

  const events = packets.filter((p) => p.track_event).map((p) => ({ ts: p.timestamp!, ...p.track_event! }));
  const rows = queryTrace<{ id: number; name: string; entry: string; status_name: string | null; previous_mode: string; thread_id: number }>(trace, 'SELECT id, name, entry, status_name, previous_mode, thread_id FROM syscalls WHERE session_id = 1 ORDER BY id');
  const syscallSlices = events.filter((e) => e.type === 1 && e.categories?.includes('syscalls'));
  t.equal(syscallSlices.length, rows.length, 'one slice per system call');
  for (const r of rows) {
    const s = syscallSlices.find((e) => arg(e, 'syscall_id') === r.id);
    t.ok(s, `syscall ${r.id} has a slice`);
    t.equal(s?.name, `${r.name} (${r.entry})`);
    t.equal(arg(s, 'status_name'), r.status_name ?? 'never returned', `syscall ${r.id}'s status`);
    t.equal(arg(s, 'PreviousMode'), r.previous_mode);
    t.equal(s?.track_uuid, trackUuid.syscalls(r.thread_id));
    t.ok(s?.categories?.[0] === 'ring3' || s?.categories?.[0] === 'ring0');
  }
  t.ok(syscallSlices.some((e) => e.name === 'NtWriteFile (nt-direct)' && arg(e, 'status_name') === 'STATUS_ACCESS_VIOLATION'), 'the failed direct call shows its status');

  const frames = events.filter((e) => e.type === 1 && e.categories?.includes('calls'));
  const calls = queryTrace<{ n: number }>(trace, 'SELECT count(*) AS n FROM calls WHERE session_id = 1')[0].n;
  t.equal(frames.length, calls, 'one slice per call frame');
  t.ok(frames.find((f) => f.name === 'nt!KiFastCallEntry')?.categories?.includes('ring0'), 'a kernel frame is ring0');
  t.ok(frames.find((f) => f.name === 'ntdll!NtReadFile')?.categories?.includes('ring3'), 'an ntdll frame is ring3');

  for (const [table, prefix] of [['msr_reads', 'rdmsr'], ['ssdt_lookups', 'SSDT'], ['apc_checks', 'APC check']] as const) {
    const n = queryTrace<{ n: number }>(trace, `SELECT count(*) AS n FROM ${table} WHERE session_id = 1`)[0].n;
    t.equal(events.filter((e) => e.type === 3 && e.name?.startsWith(prefix)).length, n, `one instant per ${table} row (${n})`);
  }
  const lookup = events.find((e) => e.type === 3 && e.name?.startsWith('SSDT'));
  t.match(String(arg(lookup, 'target_symbol')), /^nt!Nt/, 'an SSDT lookup says its target');
  t.ok(arg(lookup, 'service_index') !== undefined && arg(lookup, 'table_index') !== undefined, 'and its index and table');

  // The sysenter call's flow: from the system call to nt!NtReadFile's frame to the sysexit.
  const read = syscallSlices.find((e) => e.name === 'NtReadFile (sysenter)')!;
  const id = read.flow_ids![0];
  const chain = events.filter((e) => e.flow_ids?.includes(id) || e.terminating_flow_ids?.includes(id));
  t.same(chain.map((e) => e.name), ['NtReadFile (sysenter)', 'nt!NtReadFile', 'NtReadFile returns (sysexit)'], 'flow: call → service routine → sysexit');
  // The registers of its ring changes, as the trace recorded them.
  const rt = queryTrace<{ mechanism: string; from_eip: number; to_eip: number }>(trace, "SELECT r.mechanism, r.from_eip, r.to_eip FROM ring_transitions r, syscalls s WHERE r.session_id = 1 AND s.session_id = 1 AND s.id = ? AND r.seq BETWEEN s.enter_seq AND s.exit_seq AND r.mechanism IN ('sysenter', 'sysexit') ORDER BY r.seq", arg(read, 'syscall_id'));
  const h = (n: number) => '0x' + (n >>> 0).toString(16).toUpperCase().padStart(8, '0');
  t.equal(arg(read, 'sysenter EIP'), `${h(rt[0].from_eip)} → ${h(rt[0].to_eip)}`, 'sysenter EIP from → to');
  t.equal(arg(read, 'sysexit EIP'), `${h(rt[rt.length - 1].from_eip)} → ${h(rt[rt.length - 1].to_eip)}`, 'sysexit EIP from → to');
  t.equal(arg(read, 'arg.FileHandle'), '0x00000004 (File (process table))', 'the decoded arguments');
});

t.test('user-apc: the APC delivery is an instant with pending and delivered', async (t) => {
  const packets = decode(exportToBuffer(trace, 'perfetto', 'user-apc').bytes);
  checkStructure(t, packets);
  const checks = packets.filter((p) => p.track_event?.name?.startsWith('APC check')).map((p) => p.track_event!);
  const rows = queryTrace<{ n: number; d: number }>(trace, 'SELECT count(*) AS n, sum(delivered) AS d FROM apc_checks WHERE session_id = 2')[0];
  t.equal(checks.length, rows.n);
  t.ok(rows.d > 0, 'the scenario delivers an APC');
  t.equal(checks.filter((c) => arg(c, 'delivered') === 1).length, rows.d, 'delivered passes say so');
  t.ok(checks.some((c) => c.name === 'APC check: user APC delivered' && arg(c, 'user_apc_pending') === 1));
});

t.test("kernel-zw-readfile: the driver's Zw call flows to its service", async (t) => {
  const packets = decode(exportToBuffer(trace, 'perfetto', 'kernel-zw-readfile').bytes);
  checkStructure(t, packets);
  const events = packets.filter((p) => p.track_event).map((p) => p.track_event!);
  const zw = events.filter((e) => e.type === 1 && arg(e, 'entry') === 'zw-kernel');
  t.ok(zw.length >= 1, 'a zw-kernel system call');
  const read = zw.find((e) => e.name === 'NtReadFile (zw-kernel)')!;
  t.equal(arg(read, 'PreviousMode'), 'KernelMode');
  const id = read.flow_ids![0];
  const chain = events.filter((e) => e.flow_ids?.includes(id) || e.terminating_flow_ids?.includes(id)).map((e) => e.name);
  t.same(chain, ['NtReadFile (zw-kernel)', 'nt!NtReadFile', 'NtReadFile returns (return to the Zw stub)']);
});

t.test('an independent wire-format walk agrees with protobufjs', async (t) => {
  const { bytes } = exportToBuffer(trace, 'perfetto', 'osr-log-user-handle');
  const top = walk(bytes);
  t.ok(top.every(([f, w]) => f === 1 && w === 2), 'the file is only Trace.packet (field 1, length-delimited)');
  const decoded = decode(bytes);
  t.equal(top.length, decoded.length, 'as many packets as protobufjs decodes');
  const timestamps = top.map(([, , v]) => walk(v as Uint8Array).find(([f]) => f === 8)?.[2]);
  t.same(
    timestamps.map((v) => (v === undefined ? undefined : Number(v))),
    decoded.map((p) => p.timestamp),
    'field 8 (timestamp) as varints, the same values',
  );
  const trackEvents = top.map(([, , v]) => walk(v as Uint8Array).find(([f]) => f === 11)).filter((x) => x);
  t.equal(trackEvents.length, decoded.filter((p) => p.track_event).length, 'field 11 (track_event) where protobufjs sees one');
  const flows = trackEvents.flatMap((x) => walk(x![2] as Uint8Array).filter(([f]) => f === 47 || f === 48));
  t.ok(flows.length > 0 && flows.every(([, w]) => w === 1 || w === 2), 'flow ids as fixed64 (field 47/48, packed or not)');
});

t.test('--syscall: only that call and what ran inside it', async (t) => {
  const packets = decode(exportToBuffer(trace, 'perfetto', 'osr-log-user-handle', 4).bytes);
  checkStructure(t, packets);
  const events = packets.filter((p) => p.track_event).map((p) => p.track_event!);
  const syscallIds = events.filter((e) => e.type === 1 && e.categories?.includes('syscalls')).map((e) => arg(e, 'syscall_id'));
  const inside = queryTrace<{ id: number }>(trace, 'SELECT c.id FROM syscalls c, syscalls w WHERE c.session_id = 1 AND w.session_id = 1 AND w.id = 4 AND c.enter_seq BETWEEN w.enter_seq AND w.exit_seq ORDER BY c.id').map((r) => r.id);
  t.same(syscallIds, inside, 'the call and the calls made inside it');
  t.same(inside, [4, 5, 6]);
  const frames = events.filter((e) => e.type === 1 && e.categories?.includes('calls')).map((e) => e.name);
  t.notOk(frames.includes('osr-log-user!start'), 'frames entered before the call are left out');
  t.notOk(frames.includes('nt!NtCreateFile'), 'frames of other calls are left out');
  t.ok(frames.includes('nt!NtReadFile') && frames.includes('osr-log-user-handle!DispatchRead'), "the call's own frames are in");
});
