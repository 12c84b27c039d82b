// `record`: run a program (or a built-in scenario) on the miniature XP and write everything the
// machine says into a trace file. The machine runs here in slices; between slices each batch of
// events goes, as transferable buffers, to the writer thread, so emulation and SQLite use both
// cores. The session row is written 'incomplete' first and 'complete' at the end: a killed
// recording leaves a valid file missing at most the batches in flight.
import { existsSync, statSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { Guest, R, SCENARIOS, findScenario, nearestSymbol, scenarioSource, type CpuModel, type GuestOutcome, type ProgramSource } from '../core/index.js';
import { BatchMessages } from './batch.js';
import { SyscallTally } from './syscall-tally.js';
import { TraceFileError } from './file.js';
import { NTFLOW_VERSION } from './version.js';
import type { FromWriter, SymbolRow, ToWriter } from './writer.js';

/** What to run: a built-in scenario by name, or a program (and drivers). */
export type RecordTarget = { scenario: string } | { program: ProgramSource; drivers?: ProgramSource[] };

export interface RecordOptions {
  /** The trace file (created, or appended to: one file holds many sessions). */
  output: string;
  name?: string;
  /** Overrides the scenario's CPU model. */
  cpu?: CpuModel;
  /** Stop the machine after this many instructions (default 50 M). */
  maxInstructions?: number;
  /** Called after every slice, for progress bars. */
  onProgress?: (p: RecordProgress) => void;
  /** Aborting stops after the current slice, writes the last batch and leaves the session incomplete. */
  signal?: AbortSignal;
  /**
   * A writer thread kept open across sessions (openRecordWriter): many short sessions skip a
   * thread start and a file open each (the fuzzer records one session per random program).
   */
  writer?: RecordWriter;
  /** Called with the booted guest before it runs (observers that check the live event stream). */
  onGuest?: (guest: Guest) => void;
}

export interface RecordProgress {
  instructions: number;
  events: number;
  syscalls: number;
  seconds: number;
}

export interface SessionSummary {
  sessionId: number;
  file: string;
  name: string;
  status: 'complete' | 'incomplete';
  outcome: GuestOutcome | null;
  instructions: number;
  events: number;
  /** System calls: what the syscalls projection lists (dispatches, rejected numbers included, and direct Nt calls). */
  syscalls: number;
  /** Failing NTSTATUS names → how many of those calls returned each (the status the caller got). */
  failures: Record<string, number>;
  /** What the program wrote to its console (console-output events), in order. */
  console: ConsoleSummary;
  /** What was printed for the debugger (debug-print events), in order: the first ones. */
  debugPrints: { text: string; mode: string; source: string; callerSymbol: string | null }[];
  /** Bytes this session added to the file (0 when it did not finish). */
  bytes: number;
  bytesPerInstruction: number;
  seconds: number;
}

export interface ConsoleSummary {
  writes: number;
  bytes: number;
  /** The text, up to CONSOLE_TEXT_MAX characters of it. */
  text: string;
  truncated: boolean;
}

/** How much console text and how many debug prints a summary keeps (the trace keeps them all). */
const CONSOLE_TEXT_MAX = 64 * 1024;
const DEBUG_PRINTS_MAX = 100;

/** A mistake in what the user asked to record (unknown scenario, bad program): one line, exit 1. */
export class RecordInputError extends Error {
  override name = 'RecordInputError';
}

const SLICE = 1 << 14; // instructions per slice: a checkpoint each, so time travel replays at most this many
const MAX_IN_FLIGHT = 2;
export const DEFAULT_MAX_INSTRUCTIONS = 50_000_000;

interface Resolved {
  program: ProgramSource;
  drivers: ProgramSource[];
  cpu: CpuModel;
  scenario: string | null;
  label: string;
}

export function resolveTarget(target: RecordTarget, cpu?: CpuModel): Resolved {
  if ('scenario' in target) {
    const s = findScenario(target.scenario);
    if (!s) {
      const near = nearestSymbol(target.scenario, SCENARIOS.map((x) => x.name));
      throw new RecordInputError(`unknown scenario '${target.scenario}'${near ? `; did you mean '${near}'?` : ''} (run 'ntflow scenarios' for the list, or give a .asm file)`);
    }
    return { program: scenarioSource(s.program), drivers: s.drivers.map(scenarioSource), cpu: cpu ?? s.cpu, scenario: s.name, label: s.name };
  }
  return { program: target.program, drivers: target.drivers ?? [], cpu: cpu ?? 'sysenter', scenario: null, label: target.program.fileName.replace(/^.*[\\/]/, '').replace(/\.(asm|exe)$/i, '') };
}

/** A writer thread and the promises of its replies, in order. */
class WriterThread implements RecordWriter {
  private readonly worker: Worker;
  private readonly waiting: { resolve: (m: FromWriter) => void; reject: (e: Error) => void }[] = [];
  private failure: Error | null = null;

  constructor() {
    this.worker = new Worker(new URL('./writer.js', import.meta.url));
    this.worker.on('message', (m: FromWriter) => {
      const w = this.waiting.shift();
      if (!w) return;
      if (m.type === 'error') {
        const err = m.userError ? new TraceFileError(m.message) : new Error(m.message);
        this.failure = err;
        w.reject(err);
        for (const rest of this.waiting.splice(0)) rest.reject(err);
      } else w.resolve(m);
    });
    this.worker.on('error', (e) => {
      this.failure = e;
      for (const w of this.waiting.splice(0)) w.reject(e);
    });
  }

  get inFlight(): number {
    return this.waiting.length;
  }

  send(msg: ToWriter, transfer: ArrayBuffer[] = []): Promise<FromWriter> {
    const p: Promise<FromWriter> = this.failure
      ? Promise.reject(this.failure)
      : new Promise((resolve, reject) => {
          this.waiting.push({ resolve, reject });
          this.worker.postMessage(msg, transfer);
        });
    // A failure (a full disk) rejects every reply in flight; the one awaited carries it to the
    // caller, the others must not become unhandled rejections.
    p.catch(() => {});
    return p;
  }

  /** Wait until at most `n` replies are outstanding. */
  async drain(n: number, pending: Promise<FromWriter>[]): Promise<void> {
    while (pending.length > n) await pending.shift();
  }

  async close(): Promise<void> {
    this.worker.postMessage({ type: 'close' } satisfies ToWriter);
    await new Promise<void>((resolve) => this.worker.once('exit', () => resolve()));
  }

  async closeFile(): Promise<void> {
    await this.send({ type: 'close-file' });
  }
}

/** A writer thread that outlives one session: record({ writer }) many times, then close(). */
export interface RecordWriter {
  /** Close the trace file (so it can be checked or removed); the next session opens its own. */
  closeFile(): Promise<void>;
  /** Close the file and end the thread. */
  close(): Promise<void>;
}

export function openRecordWriter(): RecordWriter {
  return new WriterThread();
}

function symbolRows(g: Guest): SymbolRow[] {
  return g.symbols.all().map((s) => ({ address: s.address, module: s.module, name: s.name, size: s.size }));
}

const ZERO_PAGE = Buffer.alloc(4096);

/**
 * The pages among `candidates` with any non-zero byte. Memory starts zeroed and every write marks
 * its page dirty (PhysicalMemory), so the pages written since boot are the only candidates:
 * scanning all 64 MiB instead cost 0.2–0.4 s a session.
 */
function nonZeroPages(bytes: Uint8Array, candidates: number[]): number[] {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  return candidates.filter((page) => ZERO_PAGE.compare(buf, page << 12, (page + 1) << 12) !== 0);
}

/** Record one session; resolves with its summary (status 'incomplete' if aborted). */
export async function record(target: RecordTarget, options: RecordOptions): Promise<SessionSummary> {
  const resolved = resolveTarget(target, options.cpu);
  const maxInstructions = options.maxInstructions ?? DEFAULT_MAX_INSTRUCTIONS;
  if (!Number.isSafeInteger(maxInstructions) || maxInstructions <= 0) {
    throw new RecordInputError(`--max-instructions must be a positive whole number (got ${options.maxInstructions})`);
  }
  // The writer thread starts (loading SQLite and the disassembler) while the machine boots; a bad
  // program is still reported before the trace file is touched.
  const shared = options.writer as WriterThread | undefined;
  const writer = shared ?? new WriterThread();
  let guest: Guest;
  try {
    guest = Guest.boot({ cpu: resolved.cpu, program: resolved.program, drivers: resolved.drivers });
  } catch (e) {
    if (!shared) await writer.close();
    throw e;
  }
  options.onGuest?.(guest);
  const name = options.name ?? resolved.label;
  const started = Date.now();
  // The file's size before: the summary's bytes are what this session added.
  let sizeBefore = 0;
  try {
    sizeBefore = statSync(options.output).size + (existsSync(options.output + '-wal') ? statSync(options.output + '-wal').size : 0);
  } catch {
    /* a new file */
  }
  let sessionId = 0;
  // Not awaited: the machine runs its first slice while the file opens. The writer answers in
  // order, so a file that cannot be opened fails the first wait for the writer (below).
  const pending: Promise<FromWriter>[] = [];
  const opening = writer
    .send({
      type: 'open',
      path: options.output,
      symbols: symbolRows(guest),
      session: {
        name,
        program: resolved.scenario ?? resolved.program.fileName,
        options: JSON.stringify({ cpu: resolved.cpu, maxInstructions, scenario: resolved.scenario }),
        cpu: resolved.cpu,
        scenario: resolved.scenario,
        ntflowVersion: NTFLOW_VERSION,
        programFile: resolved.program.fileName,
        programSource: resolved.program.source,
        programImage: resolved.program.image ?? null,
        drivers: JSON.stringify(resolved.drivers.map((d) => (d.image ? { file: d.fileName, image: Buffer.from(d.image).toString('base64') } : { file: d.fileName, source: d.source }))),
        startedAt: new Date(started).toISOString(),
        firstThread: guest.kernel.currentThread().id,
      },
    })
    .then((opened) => {
      if (opened.type !== 'opened') throw new Error('writer did not open the trace');
      sessionId = opened.sessionId;
      return opened;
    });
  opening.catch(() => {}); // awaited in turn with the batches
  pending.push(opening);

  const messages = new BatchMessages();
  // The summary's system calls: every one the syscalls projection will list (recorder/syscall-tally.ts).
  const tally = new SyscallTally(guest.symbols.resolve('nt', 'KiSystemService') ?? -1, guest.machine.cpu.regs[R.EAX]);
  const consoleSummary: ConsoleSummary = { writes: 0, bytes: 0, text: '', truncated: false };
  const debugPrints: SessionSummary['debugPrints'] = [];
  // The machine's events in batches (instructions in columns): each goes to the writer thread as
  // it comes — at every slice's end, or sooner when its columns fill — and the few other events
  // feed the summary on the way.
  const sub = guest.batches$.subscribe((b) => {
    tally.addBatch(b);
    for (const e of b.others) {
      if (e.type === 'console-output') {
        consoleSummary.writes++;
        consoleSummary.bytes += e.bytes;
        const room = CONSOLE_TEXT_MAX - consoleSummary.text.length;
        if (e.text.length > room) consoleSummary.truncated = true;
        consoleSummary.text += e.text.slice(0, Math.max(room, 0));
      } else if (e.type === 'debug-print' && debugPrints.length < DEBUG_PRINTS_MAX) {
        debugPrints.push({ text: e.text, mode: e.mode, source: e.source, callerSymbol: e.callerSymbol });
      }
    }
    const { message, transfer } = messages.message(b);
    pending.push(writer.send(message, transfer));
  });
  // Checkpoints: the whole memory (its non-zero pages) before the first event, then at every slice
  // the pages written since; time travel starts from the nearest one.
  const mem = guest.machine.mem;
  const checkpoint = (all: boolean) => {
    const cpu = guest.machine.cpu;
    const dirty = mem.takeDirty();
    const pages = all ? nonZeroPages(mem.bytes, dirty) : dirty;
    const data = new Uint8Array(pages.length * 4096);
    pages.forEach((p, i) => data.set(mem.bytes.subarray(p * 4096, (p + 1) * 4096), i * 4096));
    const message = { type: 'checkpoint' as const, seq: cpu.seq, icount: cpu.icount, cpu: JSON.stringify(cpu.snapshot()), threadId: guest.kernel.currentThread().id, pages: Uint32Array.from(pages), data };
    pending.push(writer.send(message, [message.pages.buffer as ArrayBuffer, data.buffer as ArrayBuffer]));
  };
  checkpoint(true);
  // Backpressure: the machine waits while the writer is more than a few messages behind.
  const flush = () => writer.drain(MAX_IN_FLIGHT, pending);

  let outcome: GuestOutcome | null = null;
  let aborted = false;
  try {
    guest.start(maxInstructions);
    for (;;) {
      outcome = guest.slice(SLICE);
      await flush();
      if (outcome === null) checkpoint(false);
      options.onProgress?.({ instructions: guest.machine.cpu.icount, events: messages.totalEvents, syscalls: tally.count, seconds: (Date.now() - started) / 1000 });
      if (outcome !== null) break;
      if (options.signal?.aborted) {
        aborted = true;
        break;
      }
      await new Promise((r) => setImmediate(r)); // let signals and the writer's replies in
    }
    sub.unsubscribe();
    await flush();
    await writer.drain(0, pending);
    let bytes = 0;
    if (!aborted && outcome) {
      const fin = await writer.send({
        type: 'finish',
        status: 'complete',
        outcome: outcome.kind,
        code: outcome.code,
        detail: outcome.description,
        finishedAt: new Date().toISOString(),
        fold: !shared,
      });
      if (fin.type === 'finished') bytes = Math.max(fin.bytes - sizeBefore, 0);
    }
    const instructions = messages.totalInstructions;
    return {
      sessionId,
      file: options.output,
      name,
      status: aborted ? 'incomplete' : 'complete',
      outcome: aborted ? null : outcome,
      instructions,
      events: messages.totalEvents,
      syscalls: tally.count,
      failures: tally.failures,
      console: consoleSummary,
      debugPrints,
      bytes,
      bytesPerInstruction: instructions ? bytes / instructions : 0,
      seconds: (Date.now() - started) / 1000,
    };
  } catch (e) {
    sub.unsubscribe();
    // ntflow itself failed (an emulator gap, a bug): keep what was recorded and say so in the row.
    if (!(e instanceof TraceFileError)) {
      try {
        await flush();
        await writer.drain(0, pending);
        await writer.send({ type: 'finish', status: 'failed', outcome: 'failed', code: null, detail: (e as Error).message.split('\n')[0], finishedAt: new Date().toISOString() });
      } catch {
        /* the original error is what matters */
      }
    }
    throw e;
  } finally {
    if (!shared) await writer.close();
  }
}
