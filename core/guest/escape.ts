// The one documented escape from guest x86 code to ntflow's TypeScript: `out ESCAPE_PORT, eax`
// with EAX naming the body to run. Service routines (nt!NtCreateFile …) and a few kernel routines
// (KiDeliverApc, IoCreateDevice …) are real x86 entry points — they are in the SSDT, drivers call
// them, traces show them — whose bodies are TypeScript, as in Qiling and Speakeasy. A body reads
// its arguments from the guest stack ([ebp+8], …), PreviousMode from the KTHREAD in guest memory,
// touches guest memory only through the MMU, and returns the value the routine leaves in EAX.
import type { Kernel } from './kernel.js';

/** EAX values of the escape: 0x1000 + service number for Nt service bodies, 0x100 + n for routines. */
export const ESCAPE_SERVICE_BASE = 0x1000;
export const ESCAPE_ROUTINE_BASE = 0x100;

/** What a body sees: the kernel, its arguments and the caller's PreviousMode. */
export interface EscapeCall {
  readonly k: Kernel;
  /** The i-th stdcall argument, [ebp+8+4i] in the routine's frame. */
  arg(i: number): number;
  /** KTHREAD.PreviousMode of the current thread when the body started (0 KernelMode, 1 UserMode). */
  readonly previousMode: 0 | 1;
}

/** A service body: returns the NTSTATUS. */
export type ServiceBody = (c: EscapeCall) => number;

/** A kernel routine with a TypeScript body, callable from x86 (stdcall unless `fastcall`). */
export interface RoutineDef {
  /** Bytes of stack arguments the routine releases (`ret N`). */
  argBytes: number;
  /** fastcall: the first two arguments arrive in ECX and EDX (arg(0), arg(1)). */
  fastcall?: boolean;
  body: (c: EscapeCall) => number;
}

export type ServiceTable = Record<string, ServiceBody>;
export type RoutineTable = Record<string, RoutineDef>;
