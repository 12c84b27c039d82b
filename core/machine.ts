// The machine: physical memory, the CPU (with its MMU) and I/O ports, and the event stream.
// The guest layer (issue B) builds an XP miniature on top of this; `exec` builds a bare one.
import type { Observable } from 'rxjs';
import { CPU, type CpuModel, type IoPorts, type StopReason } from './cpu/cpu.js';
import type { EventBatch } from './batches.js';
import type { TraceEvent } from './events.js';
import { PhysicalMemory } from './mmu.js';

export interface MachineOptions {
  /** `sysenter` (default): a CPU with SEP; `int2e`: one without (SYSENTER/SYSEXIT raise #UD). */
  cpu?: CpuModel;
  /** Physical memory in bytes (default 64 MiB). */
  memorySize?: number;
}

export interface RunOptions {
  /** Stop after this many more instructions (default: unbounded). */
  maxInstructions?: number;
}

export class Machine {
  readonly mem: PhysicalMemory;
  readonly cpu: CPU;
  /**
   * Every event the machine emits. Subscribing switches the CPU to its tracing loop at the next
   * `run`; with no subscriber the loop collects nothing and emits nothing.
   */
  readonly events$: Observable<TraceEvent>;
  /**
   * The same events in batches (core/batches.ts): instructions in typed-array columns, the others
   * as objects. A batch ends at every pause or stop of a run and when its columns fill, so a
   * consumer that keeps everything pays no object per instruction (the recorder subscribes here).
   */
  readonly batches$: Observable<EventBatch>;

  constructor(options: MachineOptions = {}) {
    const model = options.cpu ?? 'sysenter';
    if (model !== 'sysenter' && model !== 'int2e') {
      throw new RangeError(`unknown CPU model '${String(model)}' (use sysenter or int2e)`);
    }
    this.mem = new PhysicalMemory(options.memorySize ?? 64 * 1024 * 1024);
    this.cpu = new CPU(this.mem, model);
    this.events$ = this.cpu.events.asObservable();
    this.batches$ = this.cpu.batches.asObservable();
  }

  get io(): IoPorts {
    return this.cpu.io;
  }

  /** Copy an image into physical memory. */
  loadPhysical(address: number, bytes: Uint8Array): void {
    this.mem.load(address, bytes);
  }

  run(options: RunOptions = {}): StopReason {
    return this.cpu.run(options.maxInstructions ?? Number.MAX_SAFE_INTEGER - this.cpu.icount);
  }

  /** Stop after the current instruction (from a port handler or the guest layer). */
  stop(detail = 'stopped'): void {
    this.cpu.halt({ kind: 'stopped', detail });
  }

  /** Complete the event stream (no more events will come). */
  close(): void {
    this.cpu.flushBatch();
    this.cpu.batches.complete();
    this.cpu.events.complete();
  }
}
