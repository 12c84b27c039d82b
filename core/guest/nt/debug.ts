// Debug output, the two ways XP has: a driver's DbgPrint (a kernel routine, here with a TypeScript
// body), and the kernel debugger's print service that ntdll reaches with INT 2Dh (EAX =
// BREAKPOINT_PRINT, ECX = the text, EDX = its length) — where OutputDebugStringA ends up. With no
// debugger attached, KiDebugService (build.ts) hands the text to KdpPrintString here. Both become a
// `debug-print` event, and the text is kept for dbgOutput().
import { R } from '../../cpu/cpu.js';
import { GuestFault } from '../../cpu/faults.js';
import type { RoutineTable } from '../escape.js';
import type { Kernel } from '../kernel.js';
import { kernelAccessFault } from '../mm.js';
import { MM_USER_PROBE_ADDRESS } from './probe.js';
import { KernelMode, S, UserMode, modeName, readStringZ, readUnicodeStringHeader, readWString, readWStringZ } from './util.js';

const debugOutput = new WeakMap<Kernel, string[]>();

/** What was printed for the debugger (DbgPrint and the debug service), in order. */
export function dbgOutput(k: Kernel): string[] {
  return debugOutput.get(k) ?? [];
}

/** The most one print carries: the size of XP's DbgPrint buffer. */
const PRINT_MAX = 512;
/** Modules a debug-service print passes through before the INT 2Dh: the caller is outside them. */
const PRINT_PATH_MODULES = new Set(['ntdll', 'kernel32']);

function print(k: Kernel, text: string, mode: 0 | 1, source: 'DbgPrint' | 'int 2Dh', caller: number | null): void {
  let out = debugOutput.get(k);
  if (!out) debugOutput.set(k, (out = []));
  out.push(text);
  const at = caller === null ? undefined : k.symbols.lookup(caller);
  k.emit<'debug-print'>({
    type: 'debug-print',
    text,
    mode: modeName(mode),
    source,
    caller,
    callerSymbol: caller === null ? null : k.symbolAt(caller),
    module: at?.module ?? null,
  });
  k.log(`${source}: ${text.replace(/\n$/, '')}`);
}

/**
 * The first return address outside ntdll and kernel32 on the EBP chain that starts at `ebp` (the
 * frame of ntdll!DebugService): who called OutputDebugStringA (or DebugPrint). Read-only; stops at
 * the first frame it cannot read, after 16 frames, or at a chain that does not climb.
 */
function callerOnFrameChain(k: Kernel, ebp: number, mode: 0 | 1): number | null {
  for (let depth = 0; depth < 16 && ebp !== 0; depth++) {
    if (mode === UserMode && ebp >= MM_USER_PROBE_ADDRESS) return null;
    const frame = readable(k, ebp, 8);
    if (!frame) return null;
    const ret = k.r32(ebp + 4);
    const module = k.symbols.lookup(ret)?.module;
    if (module !== undefined && !PRINT_PATH_MODULES.has(module)) return ret;
    const next = k.r32(ebp);
    if (next <= ebp) return null;
    ebp = next;
  }
  return null;
}

/** Whether [address, address + length) is mapped (no fault, no side effect). */
function readable(k: Kernel, address: number, length: number): boolean {
  for (let p = address & ~0xfff; p < address + length; p += 0x1000) if (k.cpu.mmu.peek(p >>> 0) === null) return false;
  return true;
}

/** The subset of the CRT's printf DbgPrint supports: %s %S %ws %ls %wZ %Z %c %d %i %u %x %X %p %%, flags, width, precision. */
export function formatDbgPrint(k: Kernel, format: string, nextArg: () => number): string {
  return format.replace(/%([-+ 0#]*)(\d*)(?:\.(\d+))?(hh|h|ll|l|w|I64)?([sSZcdiuxXp%])/g, (_m, flags: string, width: string, precision: string | undefined, size: string | undefined, conv: string) => {
    let s: string;
    switch (conv) {
      case '%':
        return '%';
      case 's':
      case 'S': {
        const p = nextArg();
        const wide = conv === 'S' || size === 'w' || size === 'l';
        s = p === 0 ? '(null)' : wide ? readWStringZ(k, p) : readStringZ(k, p);
        if (precision !== undefined) s = s.slice(0, Number(precision));
        break;
      }
      case 'Z': {
        const p = nextArg();
        if (p === 0) s = '(null)';
        else if (size === 'w') {
          const h = readUnicodeStringHeader(k, p);
          s = readWString(k, h.buffer, h.length);
        } else {
          const len = k.r16(p);
          const buf = k.r32(p + 4);
          s = Array.from(k.readBytes(buf, len), (b) => String.fromCharCode(b)).join('');
        }
        break;
      }
      case 'c':
        s = String.fromCharCode(nextArg() & 0xffff);
        break;
      case 'd':
      case 'i':
        s = String(nextArg() | 0);
        break;
      case 'u':
        s = String(nextArg() >>> 0);
        break;
      case 'x':
      case 'X':
      case 'p': {
        const v = nextArg() >>> 0;
        s = v.toString(16);
        if (conv !== 'x') s = s.toUpperCase();
        if (conv === 'p') s = s.padStart(8, '0');
        if (flags.includes('#') && conv !== 'p') s = (conv === 'X' ? '0X' : '0x') + s;
        if (size === 'I64' || size === 'll') nextArg(); // the high half (printed as 32 bits)
        break;
      }
      default:
        s = '';
    }
    const w = Number(width || 0);
    if (s.length < w) s = flags.includes('-') ? s.padEnd(w) : flags.includes('0') && /[diuxXp]/.test(conv) ? s.padStart(w, '0') : s.padStart(w);
    return s;
  });
}

export const DEBUG_ROUTINES: RoutineTable = {
  /**
   * DbgPrint(Format, …): cdecl, so the caller pops the arguments (argBytes 0). It is kernel code's
   * (KernelMode, whatever the thread's PreviousMode); its caller is the return address.
   */
  DbgPrint: {
    argBytes: 0,
    body: ({ k, arg }) => {
      let i = 1;
      const text = formatDbgPrint(k, readStringZ(k, arg(0)), () => arg(i++)).slice(0, PRINT_MAX);
      print(k, text, KernelMode, 'DbgPrint', k.r32((k.cpu.regs[R.EBP] >>> 0) + 4));
      return S.STATUS_SUCCESS;
    },
  },

  /**
   * KdpPrintString(Buffer, Length, PreviousMode): KiDebugService's BREAKPOINT_PRINT with no debugger
   * attached — XP's kernel debugger stub (KdpTrap) takes the same text from the same registers.
   * A user-mode buffer is checked against MmUserProbeAddress first; text it cannot read is
   * STATUS_ACCESS_VIOLATION for the caller (EAX after the INT 2Dh) and nothing is printed. At most
   * 512 bytes are printed. The caller is found on the frame chain from the trap frame's EBP.
   */
  KdpPrintString: {
    argBytes: 12,
    body: ({ k, arg }) => {
      const buffer = arg(0);
      const length = Math.min(arg(1) & 0xffff, PRINT_MAX);
      const mode = (arg(2) & 1) as 0 | 1;
      if (mode === UserMode && (buffer + length > MM_USER_PROBE_ADDRESS || buffer + length < buffer)) return S.STATUS_ACCESS_VIOLATION;
      let text: string;
      try {
        text = Array.from(k.readBytes(buffer, length), (b) => String.fromCharCode(b)).join('');
      } catch (e) {
        if (!(e instanceof GuestFault)) throw e;
        return kernelAccessFault(k, e);
      }
      // The routine's frame holds KiDebugService's EBP, which is the trap frame; the trap frame's Ebp
      // is the caller's (ntdll!DebugService's frame).
      const trapFrame = k.r32(k.cpu.regs[R.EBP] >>> 0);
      print(k, text, mode, 'int 2Dh', callerOnFrameChain(k, k.field('KTRAP_FRAME', 'Ebp', trapFrame), mode));
      return S.STATUS_SUCCESS;
    },
  },
};
