// The demo page's "what happened" paragraphs are generated from rows (analyzer/narrate.ts): on
// synthetic facts, the exact sentences, and that each statement follows its row.
//   npx tsc -p tsconfig.json && npx tap dist/test/narrate.test.js
import t from 'tap';
import { describeCall, narrateSession, type CallFact, type SessionFacts } from '../analyzer/index.js';
import { NTSTATUS as S } from '../core/index.js';

const call = (c: Partial<CallFact> & { id: number; name: string | null }): CallFact => ({
  parentId: null,
  serviceNumber: 0xb7,
  entry: 'sysenter',
  callerCpl: 3,
  process: 'app.exe',
  threadId: 1,
  previousMode: 'UserMode',
  status: S.STATUS_SUCCESS,
  caller: null,
  handles: [],
  probes: [],
  rejectedLookups: 0,
  apcDelivered: false,
  hook: null,
  ...c,
});

const facts = (): SessionFacts => ({
  outcome: 'exited',
  outcomeDetail: 'exited with STATUS_SUCCESS',
  calls: [
    call({ id: 1, name: 'NtCreateFile', serviceNumber: 0x25, handles: [], probes: [{ kind: 'write', address: 0x401000, length: 4, status: 0 }] }),
    call({ id: 2, name: 'NtReadFile', handles: [{ handle: 4, table: 'process', status: 0, objectType: 'File' }], hook: { kind: 'SSDT hook', via: 'drv!Hook', expected: 'nt!NtReadFile' } }),
    call({
      id: 3,
      name: 'NtWriteFile',
      parentId: 2,
      entry: 'nt-direct',
      callerCpl: 0,
      caller: 'drv!DispatchRead',
      status: S.STATUS_ACCESS_VIOLATION,
      handles: [{ handle: 8, table: 'process', status: 0, objectType: 'File' }],
      probes: [{ kind: 'write', address: 0xf8a0018c, length: 8, status: S.STATUS_ACCESS_VIOLATION }],
    }),
    call({ id: 4, name: 'NtClose', serviceNumber: 0x19, entry: 'zw-kernel', callerCpl: 0, process: 'System', previousMode: 'KernelMode', status: S.STATUS_INVALID_HANDLE, handles: [{ handle: 0x80000004, table: 'kernel', status: S.STATUS_INVALID_HANDLE, objectType: null }] }),
    call({ id: 5, name: null, serviceNumber: 0x11c, status: S.STATUS_INVALID_SYSTEM_SERVICE }),
    call({ id: 6, name: 'NtTestAlert', serviceNumber: 0x103, apcDelivered: true }),
    call({ id: 7, name: 'NtTerminateProcess', serviceNumber: 0x101, status: null }),
  ],
});

t.test('narrateSession: the program, the kernel-mode calls, the end', async (t) => {
  t.same(narrateSession(facts()), [
    'The program, app.exe, made 5 system calls, each through SYSENTER with PreviousMode UserMode: #1 NtCreateFile → STATUS_SUCCESS, ' +
      '#2 NtReadFile (the SSDT entry held drv!Hook, not nt!NtReadFile) → STATUS_SUCCESS, ' +
      '#5 service 0x11C (rejected by the limit check) → STATUS_INVALID_SYSTEM_SERVICE, ' +
      '#6 NtTestAlert (KiServiceExit delivered a user APC on the way out) → STATUS_SUCCESS, #7 NtTerminateProcess did not return.',
    'From kernel mode: #3 NtWriteFile, from drv!DispatchRead inside #2 NtReadFile, by a direct call of the routine (no dispatch), PreviousMode UserMode: ' +
      'handle 8 found in the process table (File); 1 user buffer probed, ProbeForWrite(f8a0018c, a kernel address) failing with STATUS_ACCESS_VIOLATION → STATUS_ACCESS_VIOLATION. ' +
      '#4 NtClose, on a System thread, through a kernel Zw stub into KiSystemService (no ring change), PreviousMode KernelMode: handle 80000004 not in the kernel table (STATUS_INVALID_HANDLE) → STATUS_INVALID_HANDLE.',
    'The session ended: exited with STATUS_SUCCESS.',
  ]);
});

t.test('each statement follows its row', async (t) => {
  const f = facts();
  f.calls[2].status = S.STATUS_SUCCESS;
  f.calls[2].probes[0].status = 0;
  f.calls[2].previousMode = 'KernelMode';
  const text = narrateSession(f).join('\n');
  t.match(text, /#3 NtWriteFile[^.]*PreviousMode KernelMode: handle 8 found in the process table \(File\); 1 user buffer probed → STATUS_SUCCESS\./);
  t.notMatch(text, /STATUS_ACCESS_VIOLATION/);

  t.notMatch(narrateSession(f).join('\n'), /still open/, 'handles left open are the findings\' to say');

  f.outcomeDetail = "the program's thread died of STATUS_ACCESS_VIOLATION (vector 14) at 00401046";
  t.match(narrateSession(f).at(-1), /^The session ended: the program's thread died of STATUS_ACCESS_VIOLATION/);

  const mixed = facts();
  mixed.calls[0].entry = 'int2e';
  t.match(narrateSession(mixed)[0], /^The program, app\.exe, made 5 system calls: #1 NtCreateFile \(int2e, UserMode\) → STATUS_SUCCESS, #2 NtReadFile \(sysenter, UserMode\)/, 'entries differ: each call says its own');
});

t.test('describeCall: every clause, and no probes when asked', async (t) => {
  const f = facts();
  t.equal(
    describeCall(f.calls[1], f.calls, { sayNoProbes: true }),
    '#2 NtReadFile, through SYSENTER, PreviousMode UserMode: the SSDT entry held drv!Hook, not nt!NtReadFile; handle 4 found in the process table (File); no buffer probed → STATUS_SUCCESS.',
  );
  t.equal(
    describeCall(call({ id: 9, name: 'NtGdiAbortDoc', serviceNumber: 0x1000, rejectedLookups: 1, status: S.STATUS_NOT_IMPLEMENTED, hook: { kind: 'inline hook', via: 'drv!Filter', expected: 'win32k!NtGdiAbortDoc' } })),
    "#9 NtGdiAbortDoc, through SYSENTER, PreviousMode UserMode: dispatched after a lookup past the table's limit; the dispatcher detoured through drv!Filter before calling the routine → STATUS_NOT_IMPLEMENTED.",
  );
  t.equal(
    describeCall(call({ id: 10, name: 'NtReadFile', entry: 'nt-direct', callerCpl: 0, status: S.STATUS_INVALID_HANDLE, handles: [{ handle: 0x80000004, table: 'none', status: S.STATUS_INVALID_HANDLE, objectType: null }] })),
    '#10 NtReadFile, by a direct call of the routine (no dispatch), PreviousMode UserMode: handle 80000004 refused before any handle table (STATUS_INVALID_HANDLE) → STATUS_INVALID_HANDLE.',
  );
});
