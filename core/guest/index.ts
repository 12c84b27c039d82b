// core/guest public API: boot the miniature XP SP1 with a program (and drivers), run it, and say
// why it stopped. Everything observable goes through the machine's events$.
import type { Observable } from 'rxjs';
import type { CpuModel, StopReason } from '../cpu/cpu.js';
import { EmulatorError } from '../cpu/faults.js';
import type { EventBatch } from '../batches.js';
import type { TraceEvent } from '../events.js';
import type { Machine } from '../machine.js';
import { MachineStopped, type Kernel, type Outcome } from './kernel.js';
import { bootGuestMachine } from './loader.js';
import type { AssembledProgram, ProgramSource } from './program.js';
import { statusName, bugCheckName } from './ntstatus.js';
import type { SymbolTable } from './symbols.js';

export interface GuestOptions {
  /** `sysenter` (default) or `int2e` (a CPU without SEP: ntdll goes through INT 2Eh). */
  cpu?: CpuModel;
  program: ProgramSource;
  drivers?: ProgramSource[];
}

/** Why the guest stopped, in the trace's terms (sessions.outcome). */
export interface GuestOutcome {
  kind: 'exited' | 'exception' | 'bugcheck' | 'instruction-limit' | 'triple-fault' | 'hlt' | 'stopped' | 'unsupported';
  /** Exit status, exception code or bug-check code. */
  code: number | null;
  /** A one-line human reading: "exited with STATUS_SUCCESS", "bug check 0x7F (UNEXPECTED_KERNEL_MODE_TRAP)". */
  description: string;
}

export class Guest {
  private started = false;

  private constructor(
    readonly machine: Machine,
    readonly kernel: Kernel,
    readonly symbols: SymbolTable,
    readonly program: AssembledProgram | null,
    readonly drivers: AssembledProgram[],
    private readonly startup: () => void,
  ) {}

  /** Build the machine and load the drivers and the program (nothing runs yet). */
  static boot(options: GuestOptions): Guest {
    const g = bootGuestMachine(options);
    return new Guest(g.machine, g.kernel, g.symbols, g.program, g.drivers, g.startup);
  }

  get events$(): Observable<TraceEvent> {
    return this.machine.events$;
  }

  /** The same events in batches (Machine.batches$). */
  get batches$(): Observable<EventBatch> {
    return this.machine.batches$;
  }

  /** Run until the program exits, faults, the system bug-checks, or `maxInstructions` retire. */
  run(maxInstructions = 50_000_000): GuestOutcome {
    this.start(maxInstructions);
    return this.describe(this.unsupportedStops(() => this.machine.cpu.continueRun()));
  }

  /**
   * Begin a run of at most `maxInstructions` (the first one starts the drivers and the program);
   * then call `slice` until it returns an outcome. Between slices the caller may yield to the
   * event loop (the recorder flushes batches there).
   */
  start(maxInstructions = 50_000_000): void {
    const cpu = this.machine.cpu;
    cpu.startRun(maxInstructions);
    if (!this.started) {
      // The first run begins with each driver's DriverEntry and the switch to the program.
      this.started = true;
      try {
        this.startup();
      } catch (e) {
        if (e instanceof EmulatorError) this.stopUnsupported(e);
        else if (!(e instanceof MachineStopped)) throw e;
      }
    }
  }

  /** Run up to `instructions` more; null when the run can go on, else why it stopped. */
  slice(instructions: number): GuestOutcome | null {
    const cpu = this.machine.cpu;
    const stop = this.unsupportedStops(() => cpu.continueRun(cpu.icount + instructions));
    return stop === null ? null : this.describe(stop);
  }

  /**
   * Something the machine does not emulate ends the session, in order, as outcome 'unsupported'
   * naming it (the loop's machine-stop event closes the trace), never as a JavaScript error.
   */
  private unsupportedStops<T>(run: () => T): T | StopReason {
    try {
      return run();
    } catch (e) {
      if (!(e instanceof EmulatorError)) throw e;
      this.stopUnsupported(e);
      return this.machine.cpu.continueRun();
    }
  }
  private stopUnsupported(e: EmulatorError): void {
    if (this.kernel.outcome === null) this.kernel.outcome = { kind: 'unsupported', detail: e.message };
    this.machine.cpu.halt({ kind: 'unsupported', detail: e.message });
  }

  private describe(stop: { kind: string; detail?: string }): GuestOutcome {
    return describeOutcome(this.kernel.outcome, stop.kind, stop.detail);
  }
}

function describeOutcome(outcome: Outcome | null, stopKind: string, detail?: string): GuestOutcome {
  if (outcome?.kind === 'exited') return { kind: 'exited', code: outcome.status, description: `exited with ${statusName(outcome.status)}` };
  if (outcome?.kind === 'exception') {
    return {
      kind: 'exception',
      code: outcome.code,
      description: `the process ended with exit status ${statusName(outcome.code)}: no handler wanted the exception at ${outcome.eip.toString(16).padStart(8, '0')}`,
    };
  }
  if (outcome?.kind === 'bugcheck') {
    const p = outcome.parameters.map((x) => x.toString(16)).join(', ');
    return { kind: 'bugcheck', code: outcome.code, description: `bug check 0x${outcome.code.toString(16).toUpperCase()} (${bugCheckName(outcome.code)}) (${p})` };
  }
  if (stopKind === 'unsupported') return { kind: 'unsupported', code: null, description: `unsupported: ${detail ?? 'an instruction ntflow does not emulate'}` };
  const kind = (['instruction-limit', 'triple-fault', 'hlt'].includes(stopKind) ? stopKind : 'stopped') as GuestOutcome['kind'];
  return { kind, code: null, description: detail ? `${kind}: ${detail}` : kind };
}

export { ProgramError, nearestSymbol, type ProgramSource, type AssembledProgram } from './program.js';
export { SymbolTable, formatSymbol, splitSymbol, type GuestSymbol } from './symbols.js';
export { NTSTATUS, statusName, ntSuccess, BUGCHECK, bugCheckName } from './ntstatus.js';
export { SCENARIOS, findScenario, scenarioOptions, scenarioSource, type Scenario } from './scenarios.js';
export { NT_SERVICES, WIN32K_SERVICES, serviceByName, serviceByNumber, type Service } from './services.js';
export * as layout from './layout.js';
export type { Kernel, Outcome } from './kernel.js';
