// `npm run bench`: figures, not tests. Emulate-only speed of the hot loop with paging on, with no
// subscriber and with a counting subscriber on events$, side by side in one run (absolute times on
// shared machines are noisy; the ratio is what to compare). Prints a table and one JSON line.
import { assemble, Machine, PTE_P, PTE_RW, PTE_US } from '../core/index.js';
import { benchCliView, benchOsrBytes, benchRecord, benchRecordScaling, rmSync } from './record.js';
import { benchReplay, benchState } from './analyze.js';
import { benchViz, benchVizLarge, printVizLarge } from './viz.js';
import { benchPe } from './pe.js';
import { benchExplain } from './explain.js';
import { benchDiff } from './diff.js';
import { benchExport } from './export.js';
import { dirname } from 'node:path';

const LOOP = `
  mov ecx, ITERATIONS
l:
  add eax, ecx
  xor edx, eax
  dec ecx
  jnz l
  hlt
`;

const CODE = 0x00401000;

/** A machine at CPL 0 with paging on: two page tables identity-mapping the first 8 MiB. */
function loopMachine(iterations: number): Machine {
  const m = new Machine({ memorySize: 8 * 1024 * 1024 });
  const pd = 0x1000;
  for (let t = 0; t < 2; t++) {
    const pt = 0x2000 + t * 0x1000;
    m.mem.write32(pd + t * 4, pt | PTE_P | PTE_RW | PTE_US);
    for (let i = 0; i < 1024; i++) m.mem.write32(pt + i * 4, ((t * 1024 + i) << 12) | PTE_P | PTE_RW | PTE_US);
  }
  const { bytes } = assemble(LOOP.replace('ITERATIONS', String(iterations)), { origin: CODE });
  m.loadPhysical(CODE, bytes);
  m.cpu.enterFlatProtectedMode({ eip: CODE, esp: 0x3ff000, cpl: 0 });
  m.cpu.cr3 = pd;
  m.cpu.writeCr(0, m.cpu.cr0 | 0x80000000);
  return m;
}

interface Figure {
  name: string;
  instructions: number;
  seconds: number;
  perSecond: number;
  events?: number;
}

function measure(name: string, iterations: number, subscribe: boolean | 'batches'): Figure {
  const m = loopMachine(iterations);
  let events = 0;
  const sub = subscribe === 'batches' ? m.batches$.subscribe((b) => (events += b.count + b.others.length)) : subscribe ? m.events$.subscribe(() => events++) : null;
  const t0 = process.hrtime.bigint();
  const stop = m.run();
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  sub?.unsubscribe();
  if (stop.kind !== 'hlt') throw new Error(`benchmark loop stopped with ${stop.kind} ${stop.detail ?? ""} at eip ${m.cpu.eip.toString(16)}`);
  const instructions = m.cpu.icount;
  const fig: Figure = { name, instructions, seconds, perSecond: (subscribe ? events : instructions) / seconds };
  if (subscribe) fig.events = events;
  return fig;
}

function best(name: string, iterations: number, subscribe: boolean | 'batches', runs: number): Figure {
  let top: Figure | null = null;
  for (let i = 0; i < runs; i++) {
    const f = measure(name, iterations, subscribe);
    if (top === null || f.perSecond > top.perSecond) top = f;
  }
  return top!;
}

const iterations = Number(process.env.NTFLOW_BENCH_ITERATIONS ?? 10_000_000);
measure('warm-up', 200_000, false);
measure('warm-up', 200_000, true);
measure('warm-up', 200_000, 'batches');
const figures = [
  best('emulate-only (no subscriber)', iterations, false, 3),
  best('counting subscriber on events$', Math.floor(iterations / 4), true, 3),
  best('batches$ (columns; the recorder)', Math.floor(iterations / 4), 'batches', 3),
];
console.log(`ntflow bench — loop: mov ecx,N; l: add eax,ecx; xor edx,eax; dec ecx; jnz l (paging on)`);
for (const f of figures) {
  const what = f.events !== undefined ? 'events/s' : 'instr/s';
  console.log(`  ${f.name.padEnd(34)} ${(f.perSecond / 1e6).toFixed(1).padStart(7)} M ${what}  (${f.instructions.toLocaleString('en')} instructions in ${f.seconds.toFixed(3)} s)`);
}
const rec = benchRecord(Number(process.env.NTFLOW_BENCH_RECORD_ITERATIONS ?? 500_000));
console.log(`ntflow bench — record: 'ntflow record loop.asm' (the same loop in a user program on the guest, ${rec.instructions.toLocaleString('en')} instructions)`);
console.log(`  record command with projections     ${(rec.recordPerSecond / 1e6).toFixed(3).padStart(7)} M instr/s  (${rec.recordSeconds.toFixed(2)} s)`);
console.log(`  raw better-sqlite3, 10-col rows     ${(rec.rawPerSecond / 1e6).toFixed(3).padStart(7)} M rows/s   (${rec.rawSeconds.toFixed(2)} s; 50k-row transactions, WAL, synchronous=OFF)`);
console.log(`  record / raw                        ${rec.ratio.toFixed(2).padStart(7)}            (goal >= 0.8)`);
console.log(`  trace size                          ${rec.bytesPerInstruction.toFixed(1).padStart(7)} bytes/instruction (${(rec.bytes / 1e6).toFixed(1)} MB; the runs ${rec.runsBytesPerInstruction.toFixed(2)}, code ${rec.codeBytesPerInstruction.toFixed(3)}; goal <= 4)`);
const scaling = benchRecordScaling(Number(process.env.NTFLOW_BENCH_RECORD_ITERATIONS ?? 500_000), Number(process.env.NTFLOW_BENCH_SCALING_ITERATIONS ?? 5_000_000));
console.log(`  record, fixed cost                  ${scaling.floorSeconds.toFixed(2).padStart(7)} s       (a program of ${scaling.small.instructions > 0 ? 'a few' : 'no'} instructions: node, imports, boot, file, projections)`);
console.log(`  record past it (${(scaling.small.instructions / 1e6).toFixed(0)} M → ${(scaling.large.instructions / 1e6).toFixed(0)} M instr)      ${(scaling.marginalPerSecond / 1e6).toFixed(2).padStart(7)} M instr/s  (${scaling.small.seconds.toFixed(2)} s → ${scaling.large.seconds.toFixed(2)} s for the whole command)`);
const osr = benchOsrBytes();
console.log(`  osr-log-user-handle                 ${osr.fileBytesPerInstruction.toFixed(0).padStart(7)} bytes/instruction for the whole file (${osr.instructions.toLocaleString('en')} instructions: symbols and the first checkpoint dominate); its runs ${osr.runsPayloadPerInstruction.toFixed(2)} (payload; ${osr.runsPagesPerInstruction.toFixed(1)} in pages), code ${osr.codePagesPerInstruction.toFixed(1)}`);
const cliView = benchCliView(rec.trace);
if (cliView) console.log(`  sqlite3 CLI reads 'instructions'    ${(cliView.perSecond / 1e6).toFixed(2).padStart(7)} M rows/s  (${cliView.rows.toLocaleString('en')} rows in ${cliView.seconds.toFixed(2)} s, plain SQLite; goal >= 1)`);
else console.log('  sqlite3 CLI reads \'instructions\'    (no sqlite3 CLI on this machine)');
const replay = benchReplay(rec.trace);
console.log(`ntflow bench — replay: every projection rebuilt from that trace`);
console.log(`  replay                              ${(replay.perSecond / 1e6).toFixed(2).padStart(7)} M events/s (${replay.events.toLocaleString('en')} events in ${replay.seconds.toFixed(2)} s; goal >= 2)`);
// Since issue G the record command also builds the projections (DESIGN: a plain SQLite reader sees
// them); the recording itself is the whole command less that replay.
const recordingOnly = rec.instructions / Math.max(1e-9, rec.recordSeconds - replay.seconds);
console.log(`  record less the projections         ${(recordingOnly / 1e6).toFixed(3).padStart(7)} M instr/s  (${(rec.recordSeconds - replay.seconds).toFixed(2)} s; / raw: ${(recordingOnly / rec.rawPerSecond).toFixed(2)}, goal >= 0.8)`);
rmSync(dirname(rec.trace), { recursive: true, force: true });
const big = benchRecord(Number(process.env.NTFLOW_BENCH_STATE_ITERATIONS ?? 2_500_000));
const state = benchState(big.trace);
console.log(`ntflow bench — time travel: 'ntflow state --at SEQ' on a ${big.instructions.toLocaleString('en')}-instruction trace, ${state.samples} events spread over it`);
console.log(`  state at SEQ                        ${state.medianMs.toFixed(1).padStart(7)} ms median, ${state.maxMs.toFixed(1)} ms max (goal <= 50)`);
rmSync(dirname(big.trace), { recursive: true, force: true });
const viz = await benchViz();
console.log(`ntflow bench — diagrams: a ${viz.syscalls.toLocaleString('en')}-syscall session (${viz.events.toLocaleString('en')} events), sequence diagram`);
console.log(`  data + layout + SVG                 ${(viz.totalMs / 1000).toFixed(2).padStart(7)} s  (data ${viz.dataMs.toFixed(0)} ms, layout ${viz.layoutMs.toFixed(0)} ms, SVG ${viz.svgMs.toFixed(0)} ms, ${(viz.svgBytes / 1024).toFixed(0)} KiB; goal <= 3 s)`);
const vizLarge = await benchVizLarge();
printVizLarge(vizLarge);
const pe = benchPe();
console.log(`ntflow bench — C (PE32 from MinGW): osr-log-user-handle-c's client and driver loaded and booted; bench/c/readloop.exe recorded`);
console.log(`  load + boot, first in a process     ${pe.coldBootMs.toFixed(0).padStart(7)} ms  (goal <= 300 ms before the first instruction)`);
console.log(`  load + boot, median of 15           ${pe.bootMedianMs.toFixed(0).padStart(7)} ms  (the asm osr-log-user-handle: ${pe.asmBootMedianMs.toFixed(0)} ms)`);
console.log(`  record readloop.exe                 ${(pe.readLoop.perSecond / 1e6).toFixed(3).padStart(7)} M instr/s  (${pe.readLoop.instructions.toLocaleString('en')} instructions, ${pe.readLoop.syscalls.toLocaleString('en')} system calls, ${pe.readLoop.seconds.toFixed(2)} s, ${pe.readLoop.bytesPerInstruction.toFixed(1)} bytes/instruction; the asm loop above: ${(rec.recordPerSecond / 1e6).toFixed(3)})`);
const explain = await benchExplain(Number(process.env.NTFLOW_BENCH_EXPLAIN_INSTRUCTIONS ?? 10_000_000));
console.log(`ntflow bench — findings: a ${explain.instructions.toLocaleString('en')}-instruction trace with ${explain.syscalls.toLocaleString('en')} system calls, ${explain.findings.toLocaleString('en')} findings (failed NtReadFile calls)`);
console.log(`  build the findings (in replay)      ${explain.buildMs.toFixed(0).padStart(7)} ms`);
console.log(`  ntflow explain, the whole session   ${explain.explainAllMs.toFixed(0).padStart(7)} ms  (goal <= 1000 ms)`);
console.log(`  ntflow explain --syscall ID         ${explain.explainOneMs.toFixed(1).padStart(7)} ms`);
rmSync(dirname(explain.trace), { recursive: true, force: true });
const diff = await benchDiff(Number(process.env.NTFLOW_BENCH_DIFF_INSTRUCTIONS ?? 10_000_000));
console.log(`ntflow bench — diff: two ${diff.instructions.toLocaleString('en')}-instruction sessions that differ in one instruction in the middle`);
console.log(`  ntflow diff                         ${diff.seconds.toFixed(2).padStart(7)} s   (${diff.divergences} divergence found; peak RSS ${diff.peakRssMiB.toFixed(0)} MiB; goal <= 5 s)`);
rmSync(dirname(diff.trace), { recursive: true, force: true });
const exp = await benchExport(Number(process.env.NTFLOW_BENCH_EXPORT_INSTRUCTIONS ?? 10_000_000));
console.log(`ntflow bench — export: a ${exp.instructions.toLocaleString('en')}-instruction session, ${exp.frames.toLocaleString('en')} call frames, ${exp.syscalls.toLocaleString('en')} system calls, each format by a child process`);
for (const f of exp.formats) {
  console.log(`  ntflow export --format ${f.format.padEnd(12)} ${f.seconds.toFixed(2).padStart(7)} s   (${f.items.toLocaleString('en')} items, ${(f.bytes / 1e6).toFixed(1)} MB, peak RSS ${f.peakRssMiB.toFixed(0)} MiB)`);
}
rmSync(dirname(exp.trace), { recursive: true, force: true });
console.log(JSON.stringify({ bench: 'ntflow', node: process.version, cpu: figures, record: { ...rec, trace: undefined }, scaling, osr, cliView, replay, state: { ...state, times: undefined }, viz, vizLarge, pe, explain: { ...explain, trace: undefined }, diff: { ...diff, trace: undefined }, export: { ...exp, trace: undefined } }));
