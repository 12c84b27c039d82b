// Events → compact batches for the writer thread. Instruction events (nearly all of them) go into
// typed-array columns and one packed effects buffer, transferred without copying; each distinct
// instruction (address + bytes) is sent once, as a code entry; the rare other events travel as
// plain objects.
import type { TraceEvent } from '../core/index.js';
import { packEffects, packedSize } from './effects.js';

export interface CodeEntry {
  id: number;
  eip: number;
  cpl: number;
  bytes: Uint8Array;
}

/** A plain-object event (bigints as decimal strings, effects packed) for structured cloning. */
export type OtherEvent = Record<string, unknown> & { type: string; seq: number };

export interface BatchMessage {
  type: 'batch';
  count: number;
  seq: Float64Array;
  icount: Float64Array;
  cpl: Uint8Array;
  thread: Uint32Array;
  code: Uint32Array;
  /** End offset of each instruction's effects in `effects`. */
  effectsEnd: Uint32Array;
  effects: Uint8Array;
  newCode: CodeEntry[];
  others: OtherEvent[];
  /** Events in this batch (instructions + others) and the icount after it. */
  events: number;
  instructions: number;
}

export class BatchBuilder {
  private cap: number;
  private n = 0;
  private seq!: Float64Array;
  private icount!: Float64Array;
  private cpl!: Uint8Array;
  private thread!: Uint32Array;
  private code!: Uint32Array;
  private effectsEnd!: Uint32Array;
  private effects!: Uint8Array;
  private effectsAt = 0;
  private newCode: CodeEntry[] = [];
  private others: OtherEvent[] = [];
  /** Interned instructions: a decoded instruction's bytes object is shared by all its executions. */
  private readonly codeIds = new WeakMap<Uint8Array, { eip: number; cpl: number; id: number }>();
  private readonly aliasIds = new Map<string, number>();
  private nextCodeId = 0;
  /** Events and instructions seen since the session started. */
  totalEvents = 0;
  totalInstructions = 0;

  constructor(capacity = 1 << 16) {
    this.cap = capacity;
    this.allocate();
  }

  private allocate(): void {
    const c = this.cap;
    this.seq = new Float64Array(c);
    this.icount = new Float64Array(c);
    this.cpl = new Uint8Array(c);
    this.thread = new Uint32Array(c);
    this.code = new Uint32Array(c);
    this.effectsEnd = new Uint32Array(c);
    this.effects = new Uint8Array(c * 16);
    this.effectsAt = 0;
  }

  get size(): number {
    return this.n + this.others.length;
  }
  get full(): boolean {
    return this.n >= this.cap;
  }

  private codeId(eip: number, cpl: number, bytes: Uint8Array): number {
    const known = this.codeIds.get(bytes);
    if (known !== undefined && known.eip === eip && known.cpl === cpl) return known.id;
    // The same decoded instruction at another address (a page mapped twice) or privilege level.
    const key = `${eip}:${cpl}:${Buffer.from(bytes).toString('hex')}`;
    let id = this.aliasIds.get(key);
    if (id === undefined) {
      id = this.nextCodeId++;
      this.aliasIds.set(key, id);
      this.newCode.push({ id, eip, cpl, bytes: bytes.slice() });
    }
    if (known === undefined) this.codeIds.set(bytes, { eip, cpl, id });
    return id;
  }

  /** Double the column capacity (a slice may retire more instructions than a batch was sized for). */
  private grow(): void {
    const old = { seq: this.seq, icount: this.icount, cpl: this.cpl, thread: this.thread, code: this.code, effectsEnd: this.effectsEnd, effects: this.effects, at: this.effectsAt };
    this.cap *= 2;
    this.allocate();
    this.seq.set(old.seq);
    this.icount.set(old.icount);
    this.cpl.set(old.cpl);
    this.thread.set(old.thread);
    this.code.set(old.code);
    this.effectsEnd.set(old.effectsEnd);
    if (this.effects.length < old.effects.length) this.effects = new Uint8Array(old.effects.length * 2);
    this.effects.set(old.effects.subarray(0, old.at));
    this.effectsAt = old.at;
  }

  add(e: TraceEvent): void {
    this.totalEvents++;
    if (e.type === 'instruction') {
      this.totalInstructions++;
      if (this.n === this.cap) this.grow();
      const i = this.n++;
      this.seq[i] = e.seq;
      this.icount[i] = e.icount;
      this.cpl[i] = e.cpl;
      this.thread[i] = e.thread;
      this.code[i] = this.codeId(e.eip, e.cpl, e.bytes);
      if (e.regs.length !== 0 || e.writes.length !== 0 || e.tableWrites.length !== 0) {
        const need = packedSize(e);
        if (this.effectsAt + need > this.effects.length) {
          const grown = new Uint8Array(Math.max(this.effects.length * 2, this.effectsAt + need));
          grown.set(this.effects.subarray(0, this.effectsAt));
          this.effects = grown;
        }
        this.effectsAt = packEffects(e, this.effects, this.effectsAt);
      }
      this.effectsEnd[i] = this.effectsAt;
      return;
    }
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
    this.others.push(o);
  }

  /** The batch so far (its buffers are transferred: the builder starts fresh ones). */
  take(): { message: BatchMessage; transfer: ArrayBuffer[] } {
    const n = this.n;
    const message: BatchMessage = {
      type: 'batch',
      count: n,
      seq: this.seq.slice(0, n),
      icount: this.icount.slice(0, n),
      cpl: this.cpl.slice(0, n),
      thread: this.thread.slice(0, n),
      code: this.code.slice(0, n),
      effectsEnd: this.effectsEnd.slice(0, n),
      effects: this.effects.slice(0, this.effectsAt),
      newCode: this.newCode,
      others: this.others,
      events: this.totalEvents,
      instructions: this.totalInstructions,
    };
    this.n = 0;
    this.effectsAt = 0;
    this.newCode = [];
    this.others = [];
    const transfer = [message.seq, message.icount, message.cpl, message.thread, message.code, message.effectsEnd, message.effects].map((a) => a.buffer as ArrayBuffer);
    return { message, transfer };
  }
}
