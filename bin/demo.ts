// `ntflow demo` (what `npm start` runs until the full demo of issue E): run the built-in scenario
// user-nt-readfile on the miniature XP and print its NtReadFile call instruction by instruction —
// ntdll's stub, SharedUserData!SystemCallStub, SYSENTER, KiFastCallEntry, KiSystemService,
// KiServiceTable[0xB7], nt!NtReadFile, KiServiceExit, SYSEXIT — with the MSR reads, the SSDT
// lookup, PreviousMode and the NTSTATUS between the instructions, then every system call of the
// run with its status.
import { Guest, findScenario, formatBytes, scenarioSource, statusName, type TraceEvent } from '../core/index.js';

const hex8 = (n: number) => (n >>> 0).toString(16).padStart(8, '0');

export async function runDemo(name = 'user-nt-readfile'): Promise<void> {
  const scenario = findScenario(name)!;
  const guest = Guest.boot({ cpu: scenario.cpu, program: scenarioSource(scenario.program), drivers: scenario.drivers.map(scenarioSource) });
  const events: TraceEvent[] = [];
  guest.events$.subscribe((e) => events.push(e));
  const outcome = guest.run(1_000_000);

  // The NtReadFile call: from the program's `call ntdll!NtReadFile` to the instruction after it.
  const callIndex = events.findIndex(
    (e) => e.type === 'instruction' && e.cpl === 3 && guest.symbols.format(e.nextEip) === 'ntdll!NtReadFile' && guest.symbols.lookup(e.eip)?.module !== 'ntdll',
  );
  const returnAddress = callIndex >= 0 ? (events[callIndex] as { eip: number; bytes: Uint8Array }).eip + (events[callIndex] as { bytes: Uint8Array }).bytes.length : -1;
  const endIndex = events.findIndex((e, i) => i > callIndex && e.type === 'instruction' && e.eip === returnAddress);
  const lines: string[] = [];
  let lastSymbol = '';
  for (const e of events.slice(callIndex, endIndex)) {
    switch (e.type) {
      case 'instruction': {
        const sym = guest.symbols.lookup(e.eip);
        const name = sym ? (sym.name === '' ? sym.module : `${sym.module}!${sym.name}`) : hex8(e.eip);
        if (name !== lastSymbol) lines.push(`${name}:`);
        lastSymbol = name;
        const bytes = Array.from(e.bytes, (b) => b.toString(16).padStart(2, '0')).join('');
        lines.push(`  ${e.cpl}  ${hex8(e.eip)} ${bytes.padEnd(16)} ${formatBytes(e.bytes, e.eip, { symbols: guest.symbols })}`);
        break;
      }
      case 'msr-read':
        lines.push(`        ; rdmsr ${e.msr.toString(16)} = ${e.value.toString(16)} (by ${e.source})`);
        break;
      case 'ring-transition':
        lines.push(`        ; ring ${e.fromCpl} -> ${e.toCpl} by ${e.mechanism}: eip ${hex8(e.fromEip)} -> ${hex8(e.toEip)}, esp ${hex8(e.fromEsp)} -> ${hex8(e.toEsp)}`);
        break;
      case 'ssdt-lookup':
        lines.push(`        ; KiServiceTable[${e.serviceIndex.toString(16).toUpperCase()}h] -> ${e.targetSymbol ?? 'none'}, ${(e.argBytes ?? 0).toString(16).toUpperCase()}h argument bytes`);
        break;
      case 'service-enter':
        lines.push(`        ; ${e.service} runs with PreviousMode = ${e.previousMode}`);
        break;
      case 'handle-lookup':
        lines.push(`        ; handle ${e.handle.toString(16)} looked up in the ${e.table} table: ${statusName(e.status)}`);
        break;
      case 'probe':
        lines.push(`        ; ProbeFor${e.kind === 'read' ? 'Read' : 'Write'}(${hex8(e.address)}, ${e.length}): ${statusName(e.status)}`);
        break;
      case 'service-exit':
        lines.push(`        ; ${e.service} returns ${e.statusName}`);
        break;
      case 'apc-check':
        lines.push(`        ; APC check on the way to ring ${e.returningToCpl}: user APC pending = ${e.userApcPending ? 'yes' : 'no'}`);
        break;
    }
  }

  const calls = events.filter((e) => e.type === 'service-exit' || e.type === 'service-enter');
  const summary: string[] = [];
  for (let i = 0; i < calls.length; i++) {
    const enter = calls[i];
    if (enter.type !== 'service-enter') continue;
    const exit = calls.slice(i + 1).find((e) => e.type === 'service-exit' && e.service === enter.service);
    summary.push(`  ${enter.service.padEnd(22)} ${enter.previousMode.padEnd(10)} ${exit && exit.type === 'service-exit' ? exit.statusName : '(did not return)'}`);
  }

  const instructions = guest.machine.cpu.icount;
  process.stdout.write(
    [
      `ntflow demo: scenario ${scenario.name} on the miniature Windows XP SP1`,
      `${scenario.summary}`,
      '',
      'cpl eip      bytes            instruction',
      ...lines,
      '',
      'System calls in this run (service, PreviousMode, status):',
      ...summary,
      '',
      `${instructions} instructions, ${events.length} events; ${outcome.description}.`,
      'Run `ntflow scenarios` for the other built-in scenarios.',
    ].join('\n') + '\n',
  );
}
