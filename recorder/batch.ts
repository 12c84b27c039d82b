// The machine's batches (core/batches.ts) → messages for the writer thread. The instruction
// columns travel as transferred buffers, not copied; each distinct instruction (address + bytes)
// travels once, as a code entry; the rare other events become plain objects (bigints as decimal
// strings, an exception's effects packed) for structured cloning.
import { packEffects, packedSize, type CodeEntry, type EventBatch } from '../core/index.js';

/** A plain-object event for structured cloning. */
export type OtherEvent = Record<string, unknown> & { type: string; seq: number };

export interface BatchMessage {
  type: 'batch';
  count: number;
  seq: Float64Array;
  icount: Float64Array;
  thread: Uint32Array;
  code: Uint32Array;
  /** End offset of each instruction's effects in `effects`. */
  effectsEnd: Uint32Array;
  effects: Uint8Array;
  newCode: CodeEntry[];
  others: OtherEvent[];
  /** Events and instructions recorded once this batch is written (the session row's counters). */
  events: number;
  instructions: number;
}

function plainEvent(e: EventBatch['others'][number]): OtherEvent {
  const o: OtherEvent = { ...(e as unknown as OtherEvent) };
  for (const [k, v] of Object.entries(o)) if (typeof v === 'bigint') o[k] = v.toString();
  if (e.type === 'exception') {
    const buf = new Uint8Array(packedSize(e));
    packEffects(e, buf, 0);
    o.effects = buf.length ? buf : null;
    delete o.regs;
    delete o.writes;
    delete o.tableWrites;
  }
  return o;
}

/** Counts the session's events as its batches go by, and turns each into a writer message. */
export class BatchMessages {
  totalEvents = 0;
  totalInstructions = 0;

  message(b: EventBatch): { message: BatchMessage; transfer: ArrayBuffer[] } {
    this.totalInstructions += b.count;
    this.totalEvents += b.count + b.others.length;
    const message: BatchMessage = {
      type: 'batch',
      count: b.count,
      seq: b.seq,
      icount: b.icount,
      thread: b.thread,
      code: b.code,
      effectsEnd: b.effectsEnd,
      effects: b.effects,
      newCode: b.newCode,
      others: b.others.map(plainEvent),
      events: this.totalEvents,
      instructions: this.totalInstructions,
    };
    const transfer = [b.seq, b.icount, b.thread, b.code, b.effectsEnd, b.effects].map((a) => a.buffer as ArrayBuffer);
    return { message, transfer };
  }
}
