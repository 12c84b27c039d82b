// The qemu-system-i386 oracle for ring transitions: boot a multiboot kernel (test/oracle/qemu/*.asm)
// under qemu and collect what it writes to the debug port 0xE9, and boot the same bytes on ntflow's
// machine and collect the same port. Unicorn cannot serve here: it neither emulates SYSENTER nor
// delivers INT n / exceptions through the IDT (see the oracle notes), qemu-system does both.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Machine, type StopReason } from '../../core/index.js';

/** The debug port the kernels print to (qemu's -debugcon, Bochs' 0xE9 hack). */
export const DEBUG_PORT = 0xe9;
/** isa-debug-exit's port: writing V makes qemu exit with status (V << 1) | 1. */
export const EXIT_PORT = 0xf4;

/** Assemble a NASM flat binary (`nasm -f bin`) in a temporary directory; returns its bytes. */
export function assemble(asmPath: string): Uint8Array {
  const dir = mkdtempSync(join(tmpdir(), 'ntflow-qemu-asm-'));
  try {
    const out = join(dir, 'kernel.bin');
    const r = spawnSync('nasm', ['-f', 'bin', '-o', out, asmPath], { encoding: 'utf8' });
    if (r.error) throw r.error;
    if (r.status !== 0) throw new Error(`nasm failed on ${asmPath}:\n${r.stderr}`);
    return new Uint8Array(readFileSync(out));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export interface QemuRun {
  /** Everything the guest wrote to port 0xE9. */
  text: string;
  /** qemu's exit status: 1 when the kernel wrote 0 to isa-debug-exit; null when it was killed. */
  status: number | null;
  timedOut: boolean;
  stderr: string;
}

/**
 * Boot a multiboot kernel image under qemu-system-i386 and return its debug-port text.
 * -nodefaults drops VGA, NIC and the rest (a faster boot, nothing else on the I/O ports);
 * -no-reboot turns a triple fault into an exit instead of an endless reboot loop.
 */
export function runOnQemu(kernel: Uint8Array, opts: { timeoutMs?: number } = {}): QemuRun {
  const dir = mkdtempSync(join(tmpdir(), 'ntflow-qemu-'));
  try {
    const bin = join(dir, 'kernel.bin');
    const out = join(dir, 'debugcon.txt');
    writeFileSync(bin, kernel);
    const r = spawnSync(
      'qemu-system-i386',
      [
        '-nodefaults', '-machine', 'pc', '-m', '16',
        '-display', 'none', '-no-reboot',
        '-kernel', bin,
        '-debugcon', `file:${out}`,
        '-device', `isa-debug-exit,iobase=0x${EXIT_PORT.toString(16)},iosize=0x04`,
      ],
      { encoding: 'utf8', timeout: opts.timeoutMs ?? 20_000, killSignal: 'SIGKILL' },
    );
    let text = '';
    try {
      text = readFileSync(out, 'latin1');
    } catch {
      // qemu never got far enough to create the file; the caller sees empty text
    }
    const timedOut = (r.error as NodeJS.ErrnoException | undefined)?.code === 'ETIMEDOUT';
    if (r.error && !timedOut) throw r.error;
    return { text, status: r.status, timedOut, stderr: r.stderr ?? '' };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The load fields of a multiboot header with the a.out kludge (flags bit 16). */
export interface MultibootImage {
  /** Offset of the header in the file. */
  headerOffset: number;
  headerAddr: number;
  loadAddr: number;
  /** 0 means "to the end of the file". */
  loadEndAddr: number;
  /** 0 means "no bss". */
  bssEndAddr: number;
  entry: number;
}

/** Find and check the multiboot header (in the first 8 KiB, 4-byte aligned), as a loader does. */
export function parseMultiboot(bytes: Uint8Array): MultibootImage {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const limit = Math.min(8192, bytes.length) - 32;
  for (let off = 0; off <= limit; off += 4) {
    const magic = view.getUint32(off, true);
    if (magic !== 0x1badb002) continue;
    const flags = view.getUint32(off + 4, true);
    const checksum = view.getUint32(off + 8, true);
    if (((magic + flags + checksum) >>> 0) !== 0) continue;
    if ((flags & 0x10000) === 0) throw new Error('multiboot header without the a.out load fields (flags bit 16)');
    return {
      headerOffset: off,
      headerAddr: view.getUint32(off + 12, true),
      loadAddr: view.getUint32(off + 16, true),
      loadEndAddr: view.getUint32(off + 20, true),
      bssEndAddr: view.getUint32(off + 24, true),
      entry: view.getUint32(off + 28, true),
    };
  }
  throw new Error('no multiboot header in the first 8 KiB');
}

export interface NtflowRun {
  text: string;
  /** How the machine stopped: 'stopped' (the guest wrote to isa-debug-exit) is the clean end. */
  stop: StopReason;
  /** The byte the guest wrote to isa-debug-exit, or null. */
  exitValue: number | null;
}

/**
 * Boot a multiboot kernel image on ntflow's machine the way qemu's multiboot loader does:
 * copy the load range to its physical address (bss is already zero), enter flat 32-bit protected
 * mode at ring 0 with paging and interrupts off, EAX = the multiboot magic; then run until the
 * guest writes to isa-debug-exit. Port 0xE9 bytes are the text.
 */
export function runOnNtflow(bytes: Uint8Array, opts: { maxInstructions?: number } = {}): NtflowRun {
  const mb = parseMultiboot(bytes);
  const fileStart = mb.headerOffset - (mb.headerAddr - mb.loadAddr);
  const fileEnd = mb.loadEndAddr === 0 ? bytes.length : fileStart + (mb.loadEndAddr - mb.loadAddr);
  if (fileStart < 0 || fileEnd > bytes.length) throw new Error('multiboot load range outside the file');

  const m = new Machine({ cpu: 'sysenter' });
  m.loadPhysical(mb.loadAddr, bytes.subarray(fileStart, fileEnd));
  m.cpu.enterFlatProtectedMode({ eip: mb.entry, esp: 0, cpl: 0 });
  m.cpu.regs[0] = 0x2badb002; // EAX: the multiboot magic
  m.cpu.regs[3] = 0; // EBX: no multiboot information structure; the kernels do not read one

  let text = '';
  let exitValue: number | null = null;
  m.io.out = (port, _size, value) => {
    if (port === DEBUG_PORT) text += String.fromCharCode(value & 0xff);
    else if (port === EXIT_PORT) {
      exitValue = value & 0xff;
      m.stop('exit');
    }
    // other ports (the PIC masks at 0x21/0xA1) have no device behind them here
  };
  const stop = m.run({ maxInstructions: opts.maxInstructions ?? 2_000_000 });
  return { text, stop, exitValue };
}
