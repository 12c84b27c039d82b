// Probes declared on labels of the kernel source: at those instructions, with the registers as
// they are there, the guest emits `ssdt-lookup`, `apc-check` and `exception-dispatch` events. They read guest memory
// without side effects (no accessed bits, no faults).
import { R } from '../cpu/cpu.js';
import type { Kernel } from './kernel.js';
import { statusName } from './ntstatus.js';
import { offsetOf } from './structs.js';

const DESCRIPTOR = 0x10;

export function installProbes(k: Kernel): void {
  const cpu = k.cpu;
  const nt = k.images.ntoskrnl.labels;
  const at = (label: string) => {
    const a = nt.get(label);
    if (a === undefined) throw new Error(`probe label nt!${label} is missing from the kernel source`);
    return a;
  };
  const peek32 = (addr: number): number => {
    const p = cpu.mmu.peek(addr >>> 0);
    return p === null ? 0 : cpu.mem.read32(p) >>> 0;
  };
  const peek8 = (addr: number): number => {
    const p = cpu.mmu.peek(addr >>> 0);
    return p === null ? 0 : cpu.mem.read8(p);
  };
  const serviceTable = () => peek32(k.currentThread().kthread + offsetOf('KTHREAD', 'ServiceTable'));

  // The number as the caller gave it (bits 14-15 too, which the decoding ignores), per thread: EBX
  // holds it at the limit check (`mov ebx,eax` before `and eax,0FFFh`), but the dispatcher reuses
  // EBX before the lookup, so the limit check's probe keeps it for the lookup's.
  const numberAtLimitCheck = new Map<number, number>();

  // `cmp eax,[edi+8]`: EAX = index, EDI = the descriptor, EBX = the whole number, ECX = table*0x10.
  // Only a number past the limit is a decision here; an in-range one is reported at the lookup.
  cpu.probes.set(at('KiSystemService.limitCheck'), (c) => {
    if (!c.tracing) return;
    const number = c.regs[R.EBX] >>> 0;
    numberAtLimitCheck.set(k.currentThread().id, number);
    const index = c.regs[R.EAX] >>> 0;
    const descriptor = c.regs[R.EDI] >>> 0;
    const limit = peek32(descriptor + 8);
    if (index < limit) return;
    const table = (c.regs[R.ECX] >>> 4) & 3;
    k.emit<'ssdt-lookup'>({
      type: 'ssdt-lookup',
      serviceNumber: number,
      tableIndex: table,
      serviceIndex: index,
      tableBase: peek32(descriptor),
      limit,
      target: null,
      targetSymbol: null,
      argBytes: null,
      inRange: false,
    });
    numberAtLimitCheck.delete(k.currentThread().id);
  });

  // `mov ebx,[edi+eax*4]`: EAX = index, EDI = the table's Base, ECX = argument bytes.
  cpu.probes.set(at('KiSystemService.serviceTableLookup'), (c) => {
    if (!c.tracing) return;
    const index = c.regs[R.EAX] >>> 0;
    const base = c.regs[R.EDI] >>> 0;
    const tables = serviceTable();
    let table = 0;
    for (let i = 0; i < 4; i++) if (peek32(tables + i * DESCRIPTOR) === base) (table = i), (i = 4);
    const target = peek32(base + index * 4);
    const thread = k.currentThread().id;
    const number = numberAtLimitCheck.get(thread) ?? (table << 12) | index;
    numberAtLimitCheck.delete(thread);
    k.emit<'ssdt-lookup'>({
      type: 'ssdt-lookup',
      serviceNumber: number,
      tableIndex: table,
      serviceIndex: index,
      tableBase: base,
      limit: peek32(tables + table * DESCRIPTOR + 8),
      target,
      targetSymbol: k.symbolAt(target),
      argBytes: c.regs[R.ECX] & 0xff,
      inRange: true,
    });
  });

  // `cmp byte [ebx+4Ah],0`: EBX = the thread, EBP = the trap frame being returned through.
  const apcCheck = (c: typeof cpu) => {
    if (!c.tracing) return;
    const thread = c.regs[R.EBX] >>> 0;
    const frame = c.regs[R.EBP] >>> 0;
    const user = peek8(thread + offsetOf('KTHREAD', 'ApcState.UserApcPending')) !== 0;
    k.emit<'apc-check'>({
      type: 'apc-check',
      threadId: k.currentThread().id,
      returningToCpl: peek32(frame + offsetOf('KTRAP_FRAME', 'SegCs')) & 3,
      userApcPending: user,
      kernelApcPending: peek8(thread + offsetOf('KTHREAD', 'ApcState.KernelApcPending')) !== 0,
      delivered: user,
    });
  };
  cpu.probes.set(at('KiServiceExit.apcCheck'), apcCheck);
  cpu.probes.set(at('KiDispatchUserApcs.apcCheck'), apcCheck);

  // KiDispatchException's first instruction: [ESP+4] the EXCEPTION_RECORD, [ESP+16]
  // PreviousMode, [ESP+20] FirstChance.
  cpu.probes.set(at('KiDispatchException'), (c) => {
    if (!c.tracing) return;
    const esp = c.regs[R.ESP] >>> 0;
    const record = peek32(esp + 4);
    const user = (peek32(esp + 16) & 0xff) !== 0;
    const firstChance = (peek32(esp + 20) & 0xff) !== 0;
    const code = peek32(record + offsetOf('EXCEPTION_RECORD', 'ExceptionCode'));
    const n = Math.min(peek32(record + offsetOf('EXCEPTION_RECORD', 'NumberParameters')), 15);
    const info = record + offsetOf('EXCEPTION_RECORD', 'ExceptionInformation');
    k.emit<'exception-dispatch'>({
      type: 'exception-dispatch',
      code,
      codeName: statusName(code),
      address: peek32(record + offsetOf('EXCEPTION_RECORD', 'ExceptionAddress')),
      previousMode: user ? 'UserMode' : 'KernelMode',
      firstChance,
      handler: user ? (firstChance ? 'user-dispatcher' : 'process-end') : firstChance ? 'seh-chain' : 'bugcheck',
      parameters: Array.from({ length: n }, (_, i) => peek32(info + 4 * i)),
    });
  });
}
