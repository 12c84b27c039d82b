// The disassembler's public API: 32-bit code decoded by iced-x86 and written as WinDbg writes it.
import { Decoder, DecoderOptions } from 'iced-x86';
import { WinDbgFormatter, type SymbolLookup } from './windbg.js';

export { branchTarget, type SymbolInfo, type SymbolLookup } from './windbg.js';

export interface DisasmLine {
  address: number;
  length: number;
  bytes: Uint8Array;
  text: string;
}

export interface DisasmOptions {
  symbols?: SymbolLookup;
  /** Stop after this many instructions (default: all the bytes). */
  count?: number;
}

/**
 * Disassembles `bytes` loaded at `address`. A byte that starts no valid instruction (or one cut
 * off by the end of the buffer) is shown as WinDbg shows it, `???`, and skipped alone.
 */
export function disassemble(bytes: Uint8Array, address: number, options: DisasmOptions = {}): DisasmLine[] {
  const lines: DisasmLine[] = [];
  const limit = options.count ?? Infinity;
  const formatter = new WinDbgFormatter();
  const decoder = new Decoder(32, bytes, DecoderOptions.None);
  try {
    let offset = 0;
    while (offset < bytes.length && lines.length < limit) {
      decoder.position = offset;
      decoder.ip = BigInt((address + offset) >>> 0);
      const instruction = decoder.decode();
      try {
        const length = instruction.isInvalid ? 1 : instruction.length;
        lines.push({
          address: (address + offset) >>> 0,
          length,
          bytes: bytes.slice(offset, offset + length),
          text: formatter.format(instruction, options.symbols),
        });
        offset += length;
      } finally {
        instruction.free();
      }
    }
  } finally {
    decoder.free();
    formatter.free();
  }
  return lines;
}

/** The first instruction of `bytes` at `address`, as text. */
export function formatBytes(bytes: Uint8Array, address: number, options: { symbols?: SymbolLookup } = {}): string {
  return disassemble(bytes, address, { symbols: options.symbols, count: 1 })[0]?.text ?? '???';
}
