// Registers `ntflow state` (time travel) with the CLI.
import { Command } from 'commander';
import { stateCommand } from './state.js';

export function addStateCommand(program: Command, userError: (message: string) => Error): void {
  const Err = class extends Error {
    constructor(message: string) {
      super(message);
      return userError(message);
    }
  };
  program
    .command('state')
    .description('the machine state after event SEQ, rebuilt from the trace (registers as WinDbg r, memory as db, code as u, stack as k, handles as !handle)')
    .argument('<trace.db>', 'a trace file')
    .requiredOption('--at <seq>', 'the event after which to show the state')
    .option('--session <id|name>', 'the session (default: the latest)')
    .option('--json', 'JSON: {"regs": {"eax": …, "eip": …}, "flags", "segments", "thread", "previousMode", …, and "mem", "disassembly", "stack", "handles" when asked}')
    .option('--mem <addr-and-len...>', 'also dump memory (db): --mem ADDR LEN; ADDR as WinDbg takes it: 7ffe0300, 0x7ffe0300, 0n2147353344, nt!KeServiceDescriptorTable, ntdll!NtReadFile+0x5; LEN decimal')
    .option('--u [count]', 'also disassemble COUNT instructions from EIP (u; default 8)')
    .option('--k', 'also the call stack of the running thread (k), from the calls projection')
    .option('--handles', 'also the open handles of every handle table (!handle), from handle_entries')
    .action((file: string, opts: { at: string; session?: string; json?: boolean; mem?: string[]; u?: boolean | string; k?: boolean; handles?: boolean }) => {
      if (opts.mem && opts.mem.length !== 2) throw userError('--mem takes an address and a length, e.g. --mem 0x7ffe0300 16');
      stateCommand(file, { at: opts.at, session: opts.session, json: opts.json, mem: opts.mem as [string, string] | undefined, u: opts.u, k: opts.k, handles: opts.handles }, Err);
    });
}
