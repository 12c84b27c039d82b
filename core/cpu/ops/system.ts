// System instructions: sysenter sysexit, rdmsr wrmsr rdtsc cpuid, lgdt lidt sgdt sidt ltr str lldt
// sldt, mov to/from control registers, invlpg, clts, wbinvd/invd, lmsw/smsw, cli sti hlt, in out.
// Privileged ones raise #GP(0) above CPL 0; cli/sti/in/out check IOPL (and the TSS I/O bitmap).
import { Mnemonic } from 'iced-x86';
import type { CPU } from '../cpu.js';
import { CR0_PE, CR0_TS, R } from '../cpu.js';
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

// CPUID feature bits (leaf 1, EDX) this machine reports: TSC, MSR, PSE, CMOV, and SEP when it has
// SYSENTER. No FPU: the machine does not emulate x87, and XP's service path does not need it.
const CPUID_PSE = 1 << 3;
const CPUID_TSC = 1 << 4;
const CPUID_MSR = 1 << 5;
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
    regs[R.EDX] = CPUID_PSE | CPUID_TSC | CPUID_MSR | CPUID_CMOV | (cpu.model === 'sysenter' ? CPUID_SEP : 0);
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

/** I/O permission: CPL <= IOPL, or every bit of the port range clear in the TSS I/O bitmap. */
function checkIo(cpu: CPU, port: number, size: number): void {
  if (cpu.cpl <= cpu.iopl) return;
  if (cpu.trLimit < 0x67) throw new GuestFault(Vector.GP, 0);
  const mapBase = cpu.readSys32((cpu.trBase + 0x64) | 0) >>> 16;
  const byte = mapBase + (port >>> 3);
  if (byte + 1 > cpu.trLimit) throw new GuestFault(Vector.GP, 0);
  const bits = cpu.readSys32((cpu.trBase + byte) | 0) & 0xffff;
  const mask = ((1 << size) - 1) << (port & 7);
  if (bits & mask) throw new GuestFault(Vector.GP, 0);
}

const inPort: Handler = (cpu, op) => {
  const port = op.k1 === K.IMM ? op.imm & 0xff : cpu.regs[R.EDX] & 0xffff;
  const size = op.size as 1 | 2 | 4;
  checkIo(cpu, port, size);
  cpu.setReg(R.EAX, size, cpu.io.in(port, size));
};
const outPort: Handler = (cpu, op) => {
  const port = op.k0 === K.IMM ? op.imm & 0xff : cpu.regs[R.EDX] & 0xffff;
  const size = op.size1 as 1 | 2 | 4;
  checkIo(cpu, port, size);
  cpu.io.out(port, size, cpu.getReg(R.EAX, size) >>> 0);
};

const ud2: Handler = () => {
  throw new GuestFault(Vector.UD);
};

export const system: Family = {
  [Mnemonic.Sysenter]: { resolve: () => sysenter, requiresSep: true },
  [Mnemonic.Sysexit]: { resolve: () => sysexit, requiresSep: true },
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
  [Mnemonic.In]: { resolve: () => inPort },
  [Mnemonic.Out]: { resolve: () => outPort },
  // UD0, UD1 and UD2 all exist to raise #UD.
  [Mnemonic.Ud0]: { resolve: () => ud2 },
  [Mnemonic.Ud1]: { resolve: () => ud2 },
  [Mnemonic.Ud2]: { resolve: () => ud2 },
};

/** MOV with a control register, offered to the data family's mov resolver. */
export const movControlRegister = movCr;
