// The machine's events in batches: what `Machine.batches$` emits, for consumers that keep every
// instruction (the recorder) and cannot afford an object per instruction. A batch holds the
// instructions in typed-array columns — seq, icount, cpl, thread, a code id per distinct
// instruction, the effects packed (effects.ts) — and every other event as the object events$
// would emit, all in seq order between them. The columns belong to the consumer (it may transfer
// them to another thread): the machine starts fresh ones for the next batch.
//
// A batch ends when the run pauses or stops (so a consumer sees everything up to the pause) and
// when its columns are full.
import { packLists, packedBound } from './effects.js';
import type { TraceEvent } from './events.js';

/** A distinct instruction: its address, privilege level and bytes. Ids count from 0 per machine. */
export interface CodeEntry {
  id: number;
  eip: number;
  cpl: number;
  bytes: Uint8Array;
}

export interface EventBatch {
  /** Instructions in the columns (the arrays may be longer). */
  count: number;
  seq: Float64Array;
  icount: Float64Array;
  cpl: Uint8Array;
  thread: Uint32Array;
  /** The instruction's code id (a CodeEntry's id, in this batch's newCode or an earlier one's). */
  code: Uint32Array;
  /** End offset of each instruction's packed effects in `effects` (the first starts at 0). */
  effectsEnd: Uint32Array;
  effects: Uint8Array;
  /** Distinct instructions first executed in this batch. */
  newCode: CodeEntry[];
  /** The other events, as events$ emits them, in seq order. */
  others: TraceEvent[];
}

/** Instructions per batch at most. */
export const BATCH_INSTRUCTIONS = 1 << 15;

function emptyBatch(capacity: number): EventBatch {
  return {
    count: 0,
    seq: new Float64Array(capacity),
    icount: new Float64Array(capacity),
    cpl: new Uint8Array(capacity),
    thread: new Uint32Array(capacity),
    code: new Uint32Array(capacity),
    effectsEnd: new Uint32Array(capacity),
    effects: new Uint8Array(capacity * 8),
    newCode: [],
    others: [],
  };
}

/** What an instruction's code id is tied to: decoded instructions are shared by every execution. */
interface Decoded {
  bytes: Uint8Array;
  /** The code id of its last execution (-1 before the first). */
  traceCode: number;
}

/** Fills batches for the CPU: one call per retired instruction, one per other event. */
export class BatchCollector {
  private batch: EventBatch | null = null;
  /**
   * Columns for the next batch: the instructions left before the run pauses (the CPU sets it), so
   * a recorder pausing every few thousand instructions does not allocate (and collect) 32,768 rows.
   */
  capacity = BATCH_INSTRUCTIONS;
  private effectsAt = 0;
  private readonly codeEip: number[] = [];
  private readonly codeCpl: number[] = [];
  /** Instructions at another address or privilege level than their decoded copy's last code (a page mapped twice). */
  private readonly aliases = new Map<string, number>();

  constructor(private readonly emit: (b: EventBatch) => void) {}

  private open(): EventBatch {
    return (this.batch ??= emptyBatch(this.capacity));
  }

  /** A retired instruction; its effects as [RegId, value] pairs, [linear, size, value] triples and [physical, value] pairs, the first two with their lengths. */
  instruction(seq: number, icount: number, cpl: number, eip: number, thread: number, op: Decoded, regs: Uint32Array, nRegs: number, writes: Uint32Array, nWrites: number, tableWrites: readonly number[]): void {
    const b = this.open();
    const i = b.count++;
    b.seq[i] = seq;
    b.icount[i] = icount;
    b.cpl[i] = cpl;
    b.thread[i] = thread;
    let id = op.traceCode;
    if (id < 0 || this.codeEip[id] !== eip || this.codeCpl[id] !== cpl) id = this.intern(b, op, eip, cpl);
    b.code[i] = id;
    if (nRegs !== 0 || nWrites !== 0 || tableWrites.length !== 0) {
      const need = packedBound(nRegs, nWrites, tableWrites.length);
      if (this.effectsAt + need > b.effects.length) {
        const grown = new Uint8Array(Math.max(b.effects.length * 2, this.effectsAt + need));
        grown.set(b.effects.subarray(0, this.effectsAt));
        b.effects = grown;
      }
      this.effectsAt = packLists(regs, nRegs, writes, nWrites, tableWrites, tableWrites.length, b.effects, this.effectsAt);
    }
    b.effectsEnd[i] = this.effectsAt;
    if (b.count === b.seq.length) this.flush();
  }

  other(e: TraceEvent): void {
    this.open().others.push(e);
  }

  /** Emit the batch so far (nothing when empty). */
  flush(): void {
    const b = this.batch;
    if (b === null || (b.count === 0 && b.others.length === 0)) return;
    this.batch = null;
    b.effects = b.effects.subarray(0, this.effectsAt);
    this.effectsAt = 0;
    this.emit(b);
  }

  private intern(b: EventBatch, op: Decoded, eip: number, cpl: number): number {
    const key = `${eip}:${cpl}:${Buffer.from(op.bytes).toString('hex')}`;
    let id = this.aliases.get(key);
    if (id === undefined) {
      id = this.codeEip.length;
      this.codeEip.push(eip);
      this.codeCpl.push(cpl);
      this.aliases.set(key, id);
      b.newCode.push({ id, eip, cpl, bytes: op.bytes.slice() });
    }
    op.traceCode = id;
    return id;
  }
}
