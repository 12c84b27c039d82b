// Bad programs and drivers (issue B §4): a program written wrongly is a ProgramError pointing at
// file:line:col; a program that faults, runs away or bug-checks the system stops the machine with
// a recorded outcome, and never throws. User code cannot reach the TypeScript service bodies.
//   npx tsc -p tsconfig.json && npx tap dist/test/guest-programs.test.js
import t from 'tap';
import { Guest, ProgramError, type ProgramSource } from '../core/index.js';
import { ofType, runProgram } from './util/scenario.js';

const user = (body: string, fileName = 'app.asm'): ProgramSource => ({ fileName, source: `; ntflow: user\nstart:\n${body}\n` });
const driver = (body: string, fileName = 'drv.asm'): ProgramSource => ({ fileName, source: `; ntflow: driver\nDriverEntry:\n${body}\n` });
const NOOP = user('    xor eax, eax\n    ret');

function bootError(options: { program: ProgramSource; drivers?: ProgramSource[] }): unknown {
  try {
    Guest.boot(options);
  } catch (e) {
    return e;
  }
  return null;
}

// ---- programs written wrongly -------------------------------------------------------------------------

t.test('an unknown guest symbol: file:line:col and a suggestion', async (t) => {
  const e = bootError({ program: user('    push 0\n    call ntdll!NtReadFiel\n    ret') });
  t.type(e, ProgramError);
  t.equal((e as Error).message, "app.asm:4:10: unknown guest symbol 'ntdll!NtReadFiel'; did you mean 'ntdll!NtReadFile'?");
});

t.test('an unknown symbol in a driver points into the driver', async (t) => {
  const e = bootError({ program: NOOP, drivers: [driver('    call nt!ZwReadFil\n    ret 8')] });
  t.type(e, ProgramError);
  t.match((e as Error).message, /^drv\.asm:3:10: unknown guest symbol 'nt!ZwReadFil'; did you mean 'nt!ZwReadFile'\?$/);
});

t.test('a syntax error: file:line:col', async (t) => {
  const e = bootError({ program: user('    xor eax, eax\n    mov eax,\n    ret') });
  t.type(e, ProgramError);
  t.match((e as Error).message, /^app\.asm:4:\d+: /, 'points at line 4');
  const e2 = bootError({ program: user('    movx eax, 1\n    ret') });
  t.type(e2, ProgramError);
  t.equal((e2 as Error).message, "app.asm:3:5: unknown instruction 'movx'; did you mean 'mov'?");
});

t.test('a user program without start', async (t) => {
  const e = bootError({ program: { fileName: 'nostart.asm', source: '; ntflow: user\nmain:\n    ret\n' } });
  t.type(e, ProgramError);
  t.match((e as Error).message, /^nostart\.asm:1:1: no 'start' label/);
});

t.test('a driver without DriverEntry', async (t) => {
  const e = bootError({ program: NOOP, drivers: [{ fileName: 'entry.asm', source: '; ntflow: driver\nEntry:\n    ret 8\n' }] });
  t.type(e, ProgramError);
  t.match((e as Error).message, /^entry\.asm:1:1: no 'DriverEntry' label/);
});

t.test('an unknown program kind', async (t) => {
  const e = bootError({ program: { fileName: 'kind.asm', source: '; ntflow: service\nstart:\n    ret\n' } });
  t.type(e, ProgramError);
  t.match((e as Error).message, /^kind\.asm:1:1: unknown program kind 'service'/);
});

t.test('a user program passed as a driver, a driver passed as the program', async (t) => {
  const e = bootError({ program: NOOP, drivers: [user('    ret', 'notdrv.asm')] });
  t.type(e, Error, 'refused');
  t.match((e as Error).message, /notdrv\.asm/, 'naming the file');
  const e2 = bootError({ program: driver('    xor eax, eax\n    ret 8', 'isdrv.asm') });
  t.type(e2, Error, 'refused');
  t.match((e2 as Error).message, /isdrv\.asm/, 'naming the file');
});

t.test(
  'a user program passed as a driver is a ProgramError with file:line:col',
  async (t) => {
    const e = bootError({ program: NOOP, drivers: [user('    ret', 'notdrv.asm')] });
    t.type(e, ProgramError);
    t.match((e as Error).message, /^notdrv\.asm:1:1: /);
    const e2 = bootError({ program: driver('    xor eax, eax\n    ret 8', 'isdrv.asm') });
    t.type(e2, ProgramError);
    t.match((e2 as Error).message, /^isdrv\.asm:1:1: /);
  },
);

// ---- programs that stop the machine -------------------------------------------------------------------

t.test('a faulting user program ends with STATUS_ACCESS_VIOLATION, recorded, not thrown', async (t) => {
  const r = runProgram('fault', { program: user('    mov eax, [0]\n    ret'), maxInstructions: 100_000 });
  t.same({ kind: r.outcome.kind, code: r.outcome.code }, { kind: 'exception', code: 0xc0000005 });
  t.match(r.outcome.description, /exit status STATUS_ACCESS_VIOLATION: no handler wanted the exception at 00401000/);
  const [exc] = ofType(r.events, 'exception');
  t.match(exc, { vector: 14, errorCode: 4, cr2: 0, cpl: 3, faultEip: r.guest.symbols.resolve('app', 'start') }, '#PF: a user read of a not-present page at 0');
  t.match(ofType(r.events, 'ring-transition')[0], { mechanism: 'exception', fromCpl: 3, toCpl: 0, vector: 14 });
  t.match(ofType(r.events, 'machine-stop'), [{ reason: 'exception' }]);
});

t.test('a runaway program stops at maxInstructions', async (t) => {
  const r = runProgram('runaway', { program: user('    jmp $'), maxInstructions: 10_000 });
  t.same({ kind: r.outcome.kind, code: r.outcome.code }, { kind: 'instruction-limit', code: null });
  t.equal(r.instructions.length, 10_000, 'exactly 10 000 instructions retired');
  t.match(ofType(r.events, 'machine-stop'), [{ reason: 'instruction-limit', icount: 10_000 }]);
  // The machine can be run further.
  const more = r.guest.run(5);
  t.equal(more.kind, 'instruction-limit', 'and runs on when asked');
});

t.test('a driver calling KeBugCheckEx(0xE2, …) bug-checks the system with that code', async (t) => {
  const r = runProgram('bugcheck', {
    program: NOOP,
    drivers: [driver('    push 4\n    push 3\n    push 2\n    push 1\n    push 0xE2\n    call nt!KeBugCheckEx\n    ret 8')],
  });
  t.same({ kind: r.outcome.kind, code: r.outcome.code }, { kind: 'bugcheck', code: 0xe2 });
  t.equal(r.outcome.description, 'bug check 0xE2 (MANUALLY_INITIATED_CRASH) (1, 2, 3, 4)');
  t.match(ofType(r.events, 'machine-stop'), [{ reason: 'bugcheck', thread: 8 }], 'stopped in DriverEntry, on the System thread');
  t.equal(ofType(r.events, 'thread-switch').length, 0, 'the program never started');
});

t.test('a driver touching unmapped kernel memory: PAGE_FAULT_IN_NONPAGED_AREA (0x50)', async (t) => {
  const r = runProgram('unmapped', { program: NOOP, drivers: [driver('    mov eax, [0xC8000000]\n    xor eax, eax\n    ret 8')] });
  t.same({ kind: r.outcome.kind, code: r.outcome.code }, { kind: 'bugcheck', code: 0x50 });
  const entry = r.guest.symbols.resolve('drv', 'DriverEntry')!;
  t.equal(r.outcome.description, `bug check 0x50 (PAGE_FAULT_IN_NONPAGED_AREA) (c8000000, 0, ${entry.toString(16)}, 0)`, 'parameters: the address, a read, the faulting EIP');
  t.match(ofType(r.events, 'exception'), [{ vector: 14, cpl: 0, cr2: 0xc8000000, faultEip: entry }]);
});

t.test('cli in user mode: #GP → STATUS_PRIVILEGED_INSTRUCTION', async (t) => {
  const r = runProgram('cli', { program: user('    cli\n    ret'), maxInstructions: 100_000 });
  t.same({ kind: r.outcome.kind, code: r.outcome.code }, { kind: 'exception', code: 0xc0000096 });
  t.match(ofType(r.events, 'exception'), [{ vector: 13, errorCode: 0, cpl: 3 }]);
});

t.test('the escape port from user mode is #GP too: user code cannot reach the TypeScript bodies', async (t) => {
  for (const body of ['    mov eax, 0x19\n    out 0x8E, eax\n    ret', '    mov edx, 0x8E\n    mov eax, 0x19\n    out dx, eax\n    ret']) {
    const r = runProgram('escape', { program: user(body), maxInstructions: 100_000 });
    t.same({ kind: r.outcome.kind, code: r.outcome.code }, { kind: 'exception', code: 0xc0000096 }, 'STATUS_PRIVILEGED_INSTRUCTION');
    t.match(ofType(r.events, 'exception'), [{ vector: 13, cpl: 3 }], '#GP at CPL 3');
    // The only service that runs is the second chance KiUserExceptionDispatcher asks for.
    t.same(
      r.events.filter((e) => ['service-enter', 'handle-lookup', 'probe', 'irp'].includes(e.type)).map((e) => (e.type === 'service-enter' ? e.service : e.type)),
      ['NtRaiseException'],
      'no service body ran from the out instruction',
    );
  }
});
