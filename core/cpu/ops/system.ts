// System instructions: sysenter sysexit, rdmsr wrmsr rdtsc rdpmc cpuid, lgdt lidt sgdt sidt ltr
// str lldt sldt, mov to/from control and debug registers, invlpg, clts, wbinvd/invd, lmsw/smsw,
// cli sti hlt, wait, rsm, and the descriptor queries lar lsl verr verw arpl. Privileged ones raise
// #GP(0) above CPL 0; cli/sti check IOPL. (Port I/O is in io.ts.)
import { Mnemonic } from 'iced-x86';
import type { CPU } from '../cpu.js';
import { CR0_MP, CR0_PE, CR0_TS, CR4_PCE, DR6_BD, DR7_GD, R, decodeDescriptor } from '../cpu.js';
import { F } from '../flags.js';
import { GuestFault, Vector } from '../faults.js';
import { K, type Handler, type Op } from '../op.js';
import type { Family } from '../table.js';

function privileged(h: Handler): Handler {
  return (cpu, op) => {
    cpu.requireCpl0();
    h(cpu, op);
  };
}

const sysenter: Handler = (cpu) => cpu.sysenter();
const sysexit: Handler = (cpu) => cpu.sysexit();

const rdmsr: Handler = (cpu) => {
  const v = cpu.readMsr(cpu.regs[R.ECX] >>> 0, 'rdmsr');
  cpu.regs[R.EAX] = Number(v & 0xffffffffn) | 0;
  cpu.regs[R.EDX] = Number(v >> 32n) | 0;
};
const wrmsr: Handler = (cpu) => {
  const v = (BigInt(cpu.regs[R.EDX] >>> 0) << 32n) | BigInt(cpu.regs[R.EAX] >>> 0);
  cpu.writeMsr(cpu.regs[R.ECX] >>> 0, v);
};
const rdtsc: Handler = (cpu) => {
  if (cpu.cr4 & 4 && cpu.cpl !== 0) throw new GuestFault(Vector.GP, 0); // CR4.TSD
  const t = BigInt(cpu.tsc);
  cpu.regs[R.EAX] = Number(t & 0xffffffffn) | 0;
  cpu.regs[R.EDX] = Number(t >> 32n) | 0;
};

/**
 * RDPMC: the P6 family's two performance counters (ECX 0 or 1; anything else is #GP(0)), readable
 * at CPL 0, or at any CPL with CR4.PCE. Nothing programs them (their event-select MSRs do not
 * exist here), so they read 0.
 */
const rdpmc: Handler = (cpu) => {
  if (cpu.cpl !== 0 && !(cpu.cr4 & CR4_PCE)) throw new GuestFault(Vector.GP, 0);
  if ((cpu.regs[R.ECX] >>> 0) > 1) throw new GuestFault(Vector.GP, 0);
  cpu.regs[R.EAX] = 0;
  cpu.regs[R.EDX] = 0;
};

// CPUID leaf 1 EDX: the features of this CPU model. A Pentium III's integer and system core —
// DE (debug extensions: CR4.DE, I/O breakpoints), PSE, TSC, MSR, CX8 (CMPXCHG8B), SEP (SYSENTER,
// on the sysenter model only), CMOV — and deliberately none of its floating-point or vector
// units: no FPU (bit 0), MMX (23), FXSR (24), SSE (25) or SSE2 (26). The decoder acts on the same
// list (decode.ts): MMX, SSE and every later extension raise #UD, x87 escapes raise #NM when
// CR0.EM or CR0.TS is set (an OS on this CPU sets EM, as on a 386 or 486SX without a coprocessor),
// and FWAIT raises #NM only when CR0.MP and CR0.TS are both set.
const CPUID_DE = 1 << 2;
const CPUID_PSE = 1 << 3;
const CPUID_TSC = 1 << 4;
const CPUID_MSR = 1 << 5;
const CPUID_CX8 = 1 << 8;
const CPUID_SEP = 1 << 11;
const CPUID_CMOV = 1 << 15;

const cpuid: Handler = (cpu) => {
  const regs = cpu.regs;
  const leaf = regs[R.EAX] >>> 0;
  if (leaf === 0) {
    regs[R.EAX] = 1;
    regs[R.EBX] = 0x756e6547; // "Genu"
    regs[R.EDX] = 0x49656e69; // "ineI"
    regs[R.ECX] = 0x6c65746e; // "ntel"
  } else if (leaf === 1) {
    regs[R.EAX] = 0x00000686; // family 6, model 8, stepping 6: a Pentium III, as XP SP1 ran on
    regs[R.EBX] = 0;
    regs[R.ECX] = 0;
    regs[R.EDX] = CPUID_DE | CPUID_PSE | CPUID_TSC | CPUID_MSR | CPUID_CX8 | CPUID_CMOV | (cpu.model === 'sysenter' ? CPUID_SEP : 0);
  } else {
    regs[R.EAX] = regs[R.EBX] = regs[R.ECX] = regs[R.EDX] = 0;
  }
};

/** LGDT/LIDT m16&32: limit then base (24 bits of it with a 16-bit operand size). */
function loadTableRegister(idt: boolean): Handler {
  return privileged((cpu, op) => {
    const lin = cpu.ea(op, 6);
    const limit = cpu.read16(lin);
    let base = cpu.read32((lin + 2) | 0);
    if (op.size === 2) base &= 0xffffff;
    if (idt) (cpu.idtrBase = base), (cpu.idtrLimit = limit);
    else (cpu.gdtrBase = base), (cpu.gdtrLimit = limit);
  });
}
function storeTableRegister(idt: boolean): Handler {
  return (cpu, op) => {
    const lin = cpu.ea(op, 6);
    cpu.write16(lin, idt ? cpu.idtrLimit : cpu.gdtrLimit);
    cpu.write32((lin + 2) | 0, idt ? cpu.idtrBase : cpu.gdtrBase);
  };
}

function selectorOperand(cpu: CPU, op: Op): number {
  return op.k0 === K.REG ? cpu.getReg(op.r0, 2) : cpu.read16(cpu.ea(op, 2));
}
function storeSelector(cpu: CPU, op: Op, sel: number): void {
  if (op.k0 === K.REG) cpu.setReg(op.r0, op.size, sel);
  else cpu.write16(cpu.ea(op, 2), sel);
}

const ltr = privileged((cpu, op) => cpu.loadTaskRegister(selectorOperand(cpu, op)));
const str: Handler = (cpu, op) => storeSelector(cpu, op, cpu.trSel);
/** No LDT is ever used: LLDT accepts only the null selector. */
const lldt = privileged((cpu, op) => {
  const sel = selectorOperand(cpu, op);
  if ((sel & 0xfffc) !== 0) throw new GuestFault(Vector.GP, sel & 0xfffc);
});
const sldt: Handler = (cpu, op) => storeSelector(cpu, op, 0);

/** MOV CRn, r32 / MOV r32, CRn (only these two forms exist). */
const movCr = privileged((cpu, op) => {
  if (op.k0 === K.CR) cpu.writeCr(op.r0, cpu.regs[op.r1]);
  else cpu.regs[op.r0] = cpu.readCr(op.r1);
});

/**
 * MOV DRn, r32 / MOV r32, DRn (SDM vol. 2B, MOV—Move to/from Debug Registers): #GP(0) above CPL 0;
 * then, with DR7.GD set, a general-detect #DB fault (DR6.BD set, GD cleared so the handler may use
 * the registers); DR4/DR5 are DR6/DR7, or #UD with CR4.DE.
 */
const movDr = privileged((cpu, op) => {
  const n = op.k0 === K.DR ? op.r0 : op.r1;
  if (cpu.dr[7] & DR7_GD) {
    cpu.dr[6] |= DR6_BD;
    cpu.writeDebugRegister(7, cpu.dr[7] & ~DR7_GD);
    throw new GuestFault(Vector.DB);
  }
  if (op.k0 === K.DR) cpu.writeDebugRegister(n, cpu.regs[op.r1]);
  else cpu.regs[op.r0] = cpu.readDebugRegister(n);
});

const invlpg = privileged((cpu, op) => cpu.invlpg(cpu.ea(op, 1)));
const clts = privileged((cpu) => {
  cpu.cr0 &= ~CR0_TS;
  cpu.systemDirty = true; // the traced loop reports CR0's change
});
const cacheFlush = privileged(() => {});
const smsw: Handler = (cpu, op) => storeSelector(cpu, op, cpu.cr0 & 0xffff);
/** LMSW loads PE, MP, EM, TS; it can set PE but never clear it. */
const lmsw = privileged((cpu, op) => {
  const v = selectorOperand(cpu, op) & 0xf;
  cpu.writeCr(0, (cpu.cr0 & ~0xe) | v | (cpu.cr0 & CR0_PE));
});

/** CLI/STI: allowed when CPL <= IOPL (no VME/PVI on this CPU). */
function setIf(value: number): Handler {
  return (cpu) => {
    if (cpu.cpl > cpu.iopl) throw new GuestFault(Vector.GP, 0);
    cpu.ef = (cpu.ef & ~F.IF) | value;
  };
}

/** HLT stops the machine: there are no external interrupts to wake it. */
const hlt = privileged((cpu) => cpu.halt({ kind: 'hlt' }));

/** WAIT/FWAIT: #NM when CR0.MP and CR0.TS are both set; otherwise nothing (there is no FPU to wait for). */
const wait: Handler = (cpu) => {
  if ((cpu.cr0 & (CR0_MP | CR0_TS)) === (CR0_MP | CR0_TS)) throw new GuestFault(Vector.NM);
};

// ---- LAR, LSL, VERR, VERW, ARPL: questions about a selector, answered in ZF (SDM vol. 2) ----

/** The descriptor a selector names, or null where the instruction answers ZF = 0 (null, no LDT, past the GDT). */
function queryDescriptor(cpu: CPU, sel: number): { lo: number; hi: number } | null {
  if ((sel & 0xfffc) === 0 || sel & 4 || (sel & 0xfff8) + 7 > cpu.gdtrLimit) return null;
  const at = (cpu.gdtrBase + (sel & 0xfff8)) | 0;
  return { lo: cpu.readSys32(at), hi: cpu.readSys32((at + 4) | 0) };
}

/** Types LAR (all but interrupt/trap gates and reserved) and LSL (segments, TSSs, LDT) accept. */
const LAR_SYSTEM_TYPES = new Set([0x1, 0x2, 0x3, 0x4, 0x5, 0x9, 0xb, 0xc]);
const LSL_SYSTEM_TYPES = new Set([0x1, 0x2, 0x3, 0x9, 0xb]);

/** The common visibility rule: a conforming code segment is always visible, anything else needs DPL >= CPL and >= RPL. */
function visible(cpu: CPU, sel: number, hi: number, systemTypes: Set<number>): boolean {
  const type = (hi >>> 8) & 0xf;
  const system = !(hi & 0x1000);
  if (system && !systemTypes.has(type)) return false;
  const conformingCode = !system && (type & 0xc) === 0xc;
  const dpl = (hi >>> 13) & 3;
  return conformingCode || (dpl >= cpu.cpl && dpl >= (sel & 3));
}

function descriptorQuery(kind: 'lar' | 'lsl'): Handler {
  return (cpu, op) => {
    const sel = op.k1 === K.REG ? cpu.getReg(op.r1, 2) : cpu.read16(cpu.ea(op, 2));
    const d = queryDescriptor(cpu, sel);
    if (d === null || !visible(cpu, sel, d.hi, kind === 'lar' ? LAR_SYSTEM_TYPES : LSL_SYSTEM_TYPES)) {
      cpu.setFlagBits(F.ZF, 0);
      return;
    }
    // LAR: the access-rights bytes (type, S, DPL, P; AVL, D/B, G), limit bits left out as qemu does.
    const value = kind === 'lar' ? d.hi & 0x00f0ff00 : decodeDescriptor(d.lo, d.hi).limit;
    cpu.setReg(op.r0, op.size, value);
    cpu.setFlagBits(F.ZF, F.ZF);
  };
}

function verify(write: boolean): Handler {
  return (cpu, op) => {
    const sel = op.k0 === K.REG ? cpu.getReg(op.r0, 2) : cpu.read16(cpu.ea(op, 2));
    const d = queryDescriptor(cpu, sel);
    let ok = false;
    if (d !== null && d.hi & 0x1000 && visible(cpu, sel, d.hi, LAR_SYSTEM_TYPES)) {
      const type = (d.hi >>> 8) & 0xf;
      const code = (type & 0x8) !== 0;
      ok = write ? !code && (type & 0x2) !== 0 : !code || (type & 0x2) !== 0;
    }
    cpu.setFlagBits(F.ZF, ok ? F.ZF : 0);
  };
}

/** ARPL r/m16, r16: raise the destination selector's RPL to the source's (ZF = 1), else ZF = 0. */
const arpl: Handler = (cpu, op) => {
  const mem = op.k0 === K.MEM;
  const lin = mem ? cpu.ea(op, 2) : 0;
  const dest = mem ? cpu.read16(lin) : cpu.getReg(op.r0, 2);
  const src = cpu.getReg(op.r1, 2);
  if ((dest & 3) < (src & 3)) {
    const v = (dest & ~3) | (src & 3);
    if (mem) cpu.write16(lin, v);
    else cpu.setReg(op.r0, 2, v);
    cpu.setFlagBits(F.ZF, F.ZF);
  } else {
    cpu.setFlagBits(F.ZF, 0);
  }
};

const ud2: Handler = () => {
  throw new GuestFault(Vector.UD);
};

export const system: Family = {
  // SYSENTER/SYSEXIT need CPUID.SEP: on the int2e model the decoder makes them #UD (decode.ts).
  [Mnemonic.Sysenter]: { resolve: () => sysenter },
  [Mnemonic.Sysexit]: { resolve: () => sysexit },
  [Mnemonic.Rdmsr]: { resolve: () => privileged(rdmsr) },
  [Mnemonic.Wrmsr]: { resolve: () => privileged(wrmsr) },
  [Mnemonic.Rdtsc]: { resolve: () => rdtsc },
  [Mnemonic.Cpuid]: { resolve: () => cpuid },
  [Mnemonic.Lgdt]: { resolve: () => loadTableRegister(false) },
  [Mnemonic.Lidt]: { resolve: () => loadTableRegister(true) },
  [Mnemonic.Sgdt]: { resolve: () => storeTableRegister(false) },
  [Mnemonic.Sidt]: { resolve: () => storeTableRegister(true) },
  [Mnemonic.Ltr]: { resolve: () => ltr },
  [Mnemonic.Str]: { resolve: () => str },
  [Mnemonic.Lldt]: { resolve: () => lldt },
  [Mnemonic.Sldt]: { resolve: () => sldt },
  // mov to/from control registers: iced names them mov too; the data family declines them.
  [Mnemonic.Invlpg]: { resolve: () => invlpg },
  [Mnemonic.Clts]: { resolve: () => clts },
  [Mnemonic.Wbinvd]: { resolve: () => cacheFlush },
  [Mnemonic.Invd]: { resolve: () => cacheFlush },
  [Mnemonic.Smsw]: { resolve: () => smsw },
  [Mnemonic.Lmsw]: { resolve: () => lmsw },
  [Mnemonic.Cli]: { resolve: () => setIf(0) },
  [Mnemonic.Sti]: { resolve: () => setIf(F.IF) },
  [Mnemonic.Hlt]: { resolve: () => hlt },
  [Mnemonic.Rdpmc]: { resolve: () => rdpmc },
  [Mnemonic.Wait]: { resolve: () => wait },
  // RSM leaves system-management mode, which this CPU never enters: #UD, as outside SMM.
  [Mnemonic.Rsm]: { resolve: () => ud2 },
  [Mnemonic.Lar]: { resolve: () => descriptorQuery('lar') },
  [Mnemonic.Lsl]: { resolve: () => descriptorQuery('lsl') },
  [Mnemonic.Verr]: { resolve: () => verify(false) },
  [Mnemonic.Verw]: { resolve: () => verify(true) },
  [Mnemonic.Arpl]: { resolve: () => arpl },
  // UD0, UD1 and UD2 all exist to raise #UD.
  [Mnemonic.Ud0]: { resolve: () => ud2 },
  [Mnemonic.Ud1]: { resolve: () => ud2 },
  [Mnemonic.Ud2]: { resolve: () => ud2 },
};

/** MOV with a control or debug register, offered to the data family's mov resolver. */
export const movControlRegister = movCr;
export const movDebugRegister = movDr;
