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
    .description('the machine state after event SEQ, rebuilt from the trace (registers as WinDbg r, memory as db, code as u)')
    .argument('<trace.db>', 'a trace file')
    .requiredOption('--at <seq>', 'the event after which to show the state')
    .option('--session <id|name>', 'the session (default: the latest)')
    .option('--json', 'JSON: {"regs": {"eax": …, "eip": …}, "flags", "segments", "thread", "previousMode", …}')
    .option('--mem <addr-and-len...>', 'also dump memory: --mem ADDR LEN (hex like 0x7ffe0300 or 7ffe0300, decimal length)')
    .option('--u', 'also disassemble from EIP')
    .action((file: string, opts: { at: string; session?: string; json?: boolean; mem?: string[]; u?: boolean }) => {
      if (opts.mem && opts.mem.length !== 2) throw userError('--mem takes an address and a length, e.g. --mem 0x7ffe0300 16');
      stateCommand(file, { at: opts.at, session: opts.session, json: opts.json, mem: opts.mem as [string, string] | undefined, u: opts.u }, Err);
    });
}
