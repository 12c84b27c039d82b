// The Mermaid export of the sequence diagram (viz/mermaid.ts, issue I): the exact text of a small
// hand-made call; on real recordings, participants boxed by ring, activations that balance the way
// Mermaid counts them, the notes (PreviousMode UserMode/KernelMode, SSDT, APC check, statuses, the
// findings' causes) taken from the trace; a 1,000-call session kept under Mermaid's 50,000
// characters with a note saying what was left out; hostile names written as text; the export/
// adapter. The browser side (Mermaid itself rendering it) is test/browser-mermaid.test.ts.
//   npx tsc -p tsconfig.json && npx tap dist/test/viz-mermaid.test.js
import t from 'tap';
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { record } from '../recorder/index.js';
import { replayFile } from '../analyzer/index.js';
import { MERMAID_MAX_TEXT, mermaidText, renderSequenceMermaid, sequenceInput, type FlowStep, type SequenceInput } from '../viz/index.js';
import { exportMermaid } from '../export/mermaid.js';
import { ExportInputError } from '../export/types.js';
import { THOUSAND_CLOSES, checkMermaid, decodeMermaid } from './util/mermaid.js';

const dir = mkdtempSync(join(tmpdir(), 'ntflow-viz-mermaid-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

// ---- a hand-made call ------------------------------------------------------------------------------

type Spec = [FlowStep['kind'], string, string, string, number?, Partial<FlowStep>?];

/** One NtReadFile through SYSENTER, failing with STATUS_INVALID_HANDLE; `name` is the program's lane label. */
function tinyInput(name = 'reader.exe', title = 'tiny: call #1 NtReadFile'): SequenceInput {
  const bad = { code: 0xc0000008, name: 'STATUS_INVALID_HANDLE', failed: true };
  const specs: Spec[] = [
    ['call', 'program', 'ntdll', 'call ntdll!NtReadFile', 2],
    ['call', 'ntdll', 'SharedUserData', 'call SharedUserData!SystemCallStub · EAX = 0B7h', 3],
    ['sysenter', 'SharedUserData', 'nt-entry', 'sysenter: MSR[176] = 8053A270 → KiFastCallEntry', 4],
    ['jump', 'nt-entry', 'nt-entry', 'jmp nt!KiSystemService+0x5c', 4],
    ['call', 'nt-entry', 'nt-service', 'SSDT[0xB7] → nt!NtReadFile', 5, { detail: { instruction: 'call ebx' } }],
    ['note', 'nt-service', 'nt-service', 'PreviousMode = UserMode', 5],
    ['note', 'nt-service', 'nt-service', '✗ #1 NtReadFile → STATUS_INVALID_HANDLE: handle 7E8 was never opened', 5, { finding: { id: 1, kind: 'failure-cause', severity: 'error', title: 'x', detail: 'y' } }],
    ['note', 'nt-service', 'nt-service', 'NtReadFile: STATUS_INVALID_HANDLE', 5, { status: bad }],
    ['return', 'nt-service', 'nt-entry', 'ret → nt!KiSystemService+0xc6', 5],
    ['jump', 'nt-entry', 'nt-exit', 'falls through to nt!KeReturnFromSystemCall', 4],
    ['note', 'nt-exit', 'nt-exit', 'APC check: user APC pending = no', 4],
    ['sysexit', 'nt-exit', 'SharedUserData', 'sysexit → SharedUserData!SystemCallStub+0x4', 4],
    ['return', 'SharedUserData', 'ntdll', 'ret → ntdll!NtReadFile+0xc', 3],
    ['return', 'ntdll', 'program', 'ret → reader!start+0x27 · STATUS_INVALID_HANDLE', 2, { status: bad }],
  ];
  const steps: FlowStep[] = specs.map(([kind, from, to, label, callId, extra], i) => ({ seq: 10 + i, kind, from, to, label, detail: {}, syscallId: 1, callId, ...extra }));
  return {
    title,
    lanes: [
      { id: 'program', label: name, ring: 3 },
      { id: 'ntdll', label: 'ntdll', ring: 3 },
      { id: 'SharedUserData', label: 'SharedUserData', ring: 3 },
      { id: 'nt-entry', label: 'KiFastCallEntry / KiSystemService', ring: 0 },
      { id: 'nt-service', label: 'SSDT target (nt!Nt*)', ring: 0 },
      { id: 'nt-exit', label: 'KiServiceExit', ring: 0 },
    ],
    steps,
    bands: [
      {
        syscallId: 1,
        name: 'NtReadFile',
        entry: 'sysenter',
        previousMode: 'UserMode',
        status: bad,
        parentId: null,
        firstSeq: 10,
        lastSeq: 23,
        failure: { syscallId: 1, own: true, status: 'STATUS_INVALID_HANDLE', label: '✗ STATUS_INVALID_HANDLE' },
      },
    ],
  };
}

const TINY = `sequenceDiagram
title tiny: call #35;1 NtReadFile
box aliceblue Ring 3 (user mode)
participant P1 as reader.exe
participant P2 as ntdll
participant P3 as SharedUserData
end
box linen Ring 0 (kernel mode)
participant P4 as KiFastCallEntry / KiSystemService
participant P5 as SSDT target (nt!Nt*)
participant P6 as KiServiceExit
end
Note over P1,P6: #35;1 NtReadFile via sysenter, UserMode ✗ STATUS_INVALID_HANDLE
P1->>+P2: call ntdll!NtReadFile
P2->>+P3: call SharedUserData!SystemCallStub · EAX = 0B7h
rect rgba(248, 217, 187, 0.35)
P3->>+P4: sysenter: MSR[176] = 8053A270 → KiFastCallEntry
P4-)P4: jmp nt!KiSystemService+0x5c
Note over P4: SSDT[0xB7] → nt!NtReadFile
P4->>+P5: call ebx → nt!NtReadFile
Note over P5: PreviousMode = UserMode
Note over P5: ✗ #35;1 NtReadFile → STATUS_INVALID_HANDLE: handle 7E8 was never opened
Note over P5: NtReadFile: STATUS_INVALID_HANDLE
P5-->>-P4: ret → nt!KiSystemService+0xc6
P4-)P6: falls through to nt!KeReturnFromSystemCall
Note over P6: APC check: user APC pending = no
P6-->>P3: sysexit → SharedUserData!SystemCallStub+0x4
deactivate P4
end
P3-->>-P2: ret → ntdll!NtReadFile+0xc
P2-->>-P1: ✗ ret → reader!start+0x27 · STATUS_INVALID_HANDLE
`;

t.test('a hand-made NtReadFile call: the exact text', async (t) => {
  const out = renderSequenceMermaid(tinyInput());
  t.equal(out.text, TINY);
  t.equal(out.items, 16, '10 arrows and 6 notes (the call header, SSDT, PreviousMode, the finding, the status, the APC check)');
  t.same(out.notes, [], 'nothing left out');
  t.same(checkMermaid(out.text).errors, []);
});

t.test('a finding with no step drawn (a hook that never ran) is a note at the end; an empty input is still a diagram', async (t) => {
  const input = tinyInput();
  const hook = { id: 9, kind: 'hook', severity: 'warning' as const, title: 'KiServiceTable[0xB7] → hook!Hooked', detail: '', cause: 'ssdt-entry', syscallId: null, seq: 3, noteSeq: null, evidence: [3] };
  input.findings = [hook, { ...hook, id: 1, kind: 'failure-cause', severity: 'error', title: 'drawn already' }];
  const out = renderSequenceMermaid(input);
  t.equal(out.text, `${TINY}Note over P1,P6: ⚠ KiServiceTable[0xB7] → hook!Hooked (no step of it drawn)\n`, 'finding 1 has its note among the steps; 9 goes at the end');
  t.equal(out.items, 17);
  const empty = renderSequenceMermaid({ title: 'nothing ran', lanes: [], steps: [], bands: [], findings: [hook] });
  t.equal(empty.text, 'sequenceDiagram\ntitle nothing ran\nparticipant P1 as (no steps)\nNote over P1: ⚠ KiServiceTable[0xB7] → hook!Hooked (no step of it drawn)\n');
});

t.test('activations: the same pairs without calls ids (by lane and kind); any window of steps stays balanced', async (t) => {
  const bare = tinyInput();
  for (const s of bare.steps) delete s.callId;
  t.equal(renderSequenceMermaid(bare).text, TINY, 'return ↔ call into its lane, sysexit ↔ sysenter');
  const full = tinyInput();
  let windows = 0;
  for (let a = 0; a < full.steps.length; a++) {
    for (let z = a + 1; z <= full.steps.length; z++) {
      const part = { ...full, steps: full.steps.slice(a, z) };
      const check = checkMermaid(renderSequenceMermaid(part).text);
      if (check.errors.length) t.fail(`steps ${a}..${z - 1}: ${check.errors.join('; ')}`);
      windows++;
    }
  }
  t.equal(windows, 105, 'every window of the 14 steps checked');
  // A return whose call is not drawn (the window starts inside the call) gets no '-'.
  const tail = renderSequenceMermaid({ ...full, steps: full.steps.slice(5) }).text;
  t.match(tail, /^P3-->>P2: ret → ntdll!NtReadFile\+0xc$/m, 'no deactivation for a call not drawn');
  t.notMatch(tail, /deactivate/, 'nor an explicit one');
});

t.test('mermaidText: the characters Mermaid reads as syntax become its entity codes', async (t) => {
  const cases: [string, string][] = [
    ['plain → text', 'plain → text'],
    ['#5 NtWriteFile', '#35;5 NtWriteFile'],
    ['a;b', 'a#59;b'],
    ['<script>alert(1)</script>', '#lt;script#gt;alert(1)#lt;/script#gt;'],
    ['"q" & \\', '#quot;q#quot; #amp; #92;'],
    ['%%{init: {"theme":"dark"}}%%', '#37;#37;#123;init: #123;#quot;theme#quot;:#quot;dark#quot;#125;#125;#37;#37;'],
    ['end', '#101;nd'],
    ['the END of it', 'the #69;ND of it'],
    ['sender endless', 'sender endless'],
    ['style x:y', 'st#121;le x:y'],
    ['wrap: it', '#119;rap: it'],
    ['two\nlines\r\nhere', 'two lines here'],
    ['', '…'],
  ];
  for (const [raw, want] of cases) t.equal(mermaidText(raw), want, JSON.stringify(raw));
  t.equal(mermaidText('x'.repeat(500)).length, 160, 'a huge name is cut to 160 characters');
  for (const [raw] of cases.slice(0, -1)) t.equal(decodeMermaid(mermaidText(raw)), raw.replace(/\r?\n/g, ' ').trim(), `${JSON.stringify(raw)} reads back as itself`);
});

t.test('hostile session, program and file names are text: the structure is the same as a tame one', async (t) => {
  const hostile = '</svg><script>alert(1)</script> "q" %%{init: {"securityLevel":"loose"}}%% end; #x\nNote over P1: injected';
  const input = tinyInput(hostile, `${hostile}: call #1 NtReadFile`);
  input.steps[0].label = `call ntdll!NtReadFile (${hostile})`;
  input.steps[5].label = `PreviousMode = UserMode ${hostile}`;
  const out = renderSequenceMermaid(input);
  const check = checkMermaid(out.text);
  t.same(check.errors, [], 'every line a statement, no raw syntax characters in text, blocks and activations balanced');
  t.equal(out.text.split('\n').length, TINY.split('\n').length, 'no line added or removed');
  t.notMatch(out.text, /<|%%|"/, 'no raw <, %% or quote anywhere (a > only in arrows)');
  t.equal(decodeMermaid(check.participants.get('P1')!), hostile.replace('\n', ' '), 'the program lane reads back as the name');
  t.match(out.text, /^title #lt;\/svg#gt;#lt;script#gt;/m);
});

// ---- real recordings -------------------------------------------------------------------------------

const TRACE = join(dir, 'scenarios.db');
const SESSIONS: Record<string, number> = {};

t.before(async () => {
  for (const scenario of ['user-zw-readfile', 'kernel-zw-readfile', 'user-apc', 'int2e-readfile', 'osr-log-user-handle']) {
    SESSIONS[scenario] = (await record({ scenario }, { output: TRACE, name: scenario })).sessionId;
  }
  SESSIONS.big = (await record({ program: THOUSAND_CLOSES }, { output: TRACE, name: 'closes' })).sessionId;
  replayFile(TRACE);
});

function open(): Database.Database {
  const db = new Database(TRACE, { readonly: true });
  t.teardown(() => db.close());
  return db;
}

const callId = (db: Database.Database, session: string, where: string) =>
  db.prepare(`SELECT id FROM syscalls WHERE session_id = ? AND ${where} ORDER BY id LIMIT 1`).pluck().get(SESSIONS[session]) as number;
const mermaidOf = (db: Database.Database, session: string, syscallIds?: number[]) =>
  renderSequenceMermaid(sequenceInput(db, SESSIONS[session], { registerSteps: 0, syscallIds }));
/** The lines of a box: its participants' display texts. */
function boxes(text: string): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const m of text.matchAll(/^box \w+ (Ring \d) .*\n((?:participant .*\n)+)end$/gm)) out[m[1]] = [...m[2].matchAll(/ as (.*)$/gm)].map((p) => decodeMermaid(p[1]));
  return out;
}
const notes = (text: string) => [...text.matchAll(/^Note over [^:]+: (.*)$/gm)].map((m) => decodeMermaid(m[1]));

t.test("user-zw-readfile's NtReadFile: boxes by ring, UserMode, SSDT[0xB7], the status, balanced", async (t) => {
  const db = open();
  const out = mermaidOf(db, 'user-zw-readfile', [callId(db, 'user-zw-readfile', "name = 'NtReadFile'")]);
  const check = checkMermaid(out.text);
  t.same(check.errors, []);
  t.ok(check.activations >= 5, `activations drawn (${check.activations})`);
  const b = boxes(out.text);
  t.same(b['Ring 3'], ['user-zw-readfile.exe', 'ntdll', 'SharedUserData'], 'ring 3: the program, ntdll, SharedUserData');
  t.same(b['Ring 0'].slice(0, 3), ['KiFastCallEntry / KiSystemService', 'SSDT target (nt!Nt*)', 'KiServiceExit'], 'ring 0: the dispatcher, the service, the exit');
  const n = notes(out.text);
  t.ok(n.includes('PreviousMode = UserMode'), 'PreviousMode = UserMode');
  t.notOk(n.includes('PreviousMode = KernelMode'));
  t.ok(n.includes('SSDT[0xB7] → nt!NtReadFile'), 'the SSDT lookup');
  t.ok(n.includes('NtReadFile: STATUS_SUCCESS'), 'the status');
  t.ok(n.includes('APC check: user APC pending = no'), 'the APC check');
  t.match(out.text, /^P\d->>\+P\d: sysenter: MSR\[176\] = [0-9A-F]{8} → KiFastCallEntry$/m, 'SYSENTER opens an activation');
  t.match(out.text, /^P\d-->>P\d: sysexit → SharedUserData!SystemCallStub\+0x4\ndeactivate P\d$/m, 'SYSEXIT (from KiServiceExit) closes the dispatcher\'s');
  t.match(out.text, /^rect rgba/m, 'the ring-0 part on a rect');
  t.same(out.notes, []);
});

t.test("kernel-zw-readfile: the driver's ZwReadFile runs with PreviousMode = KernelMode", async (t) => {
  const db = open();
  const zw = callId(db, 'kernel-zw-readfile', "name = 'NtReadFile' AND entry = 'zw-kernel'");
  const out = mermaidOf(db, 'kernel-zw-readfile', [zw]);
  t.same(checkMermaid(out.text).errors, []);
  const n = notes(out.text);
  t.ok(n.includes('PreviousMode = KernelMode'), 'KernelMode');
  t.notOk(n.includes('PreviousMode = UserMode'), 'and not UserMode');
  t.ok(n.some((x) => x.startsWith(`#${zw} NtReadFile via zw-kernel, KernelMode → STATUS_SUCCESS`)), 'the call header');
  t.same(boxes(out.text)['Ring 3'], undefined, 'no ring-3 participant: the call never left ring 0');
  // The whole session: both NtReadFile calls, each with its own mode.
  const whole = mermaidOf(db, 'kernel-zw-readfile');
  t.same(checkMermaid(whole.text).errors, []);
  const modes = notes(whole.text).filter((x) => x.startsWith('PreviousMode'));
  t.ok(modes.includes('PreviousMode = UserMode') && modes.includes('PreviousMode = KernelMode'), 'both modes in the session');
});

t.test('user-apc: the APC found pending and delivered; int2e-readfile: INT 2Eh and IRETD pair up', async (t) => {
  const db = open();
  const apc = mermaidOf(db, 'user-apc');
  t.same(checkMermaid(apc.text).errors, []);
  t.ok(notes(apc.text).includes('APC check: user APC pending = yes → KiDeliverApc'), 'the delivering APC check');
  const int2e = mermaidOf(db, 'int2e-readfile');
  const check = checkMermaid(int2e.text);
  t.same(check.errors, []);
  t.match(int2e.text, /^P\d->>\+P\d: int 0?2eh? → nt!KiSystemService/im, 'INT 2Eh opens an activation');
  t.match(int2e.text, /^P\d-->>-?P\d: iretd → /m, 'IRETD returns');
});

t.test("osr-log-user-handle: each failed call's cause (the findings projection) is a note", async (t) => {
  const db = open();
  const out = mermaidOf(db, 'osr-log-user-handle');
  t.same(checkMermaid(out.text).errors, []);
  const causes = db.prepare("SELECT syscall_id, title FROM findings WHERE session_id = ? AND kind = 'failure-cause' ORDER BY id").all(SESSIONS['osr-log-user-handle']) as { syscall_id: number; title: string }[];
  t.ok(causes.length >= 3, `${causes.length} failure causes recorded`);
  const n = notes(out.text);
  for (const c of causes) t.ok(n.some((x) => x.includes(c.title)), `note: ${c.title}`);
  t.ok(n.some((x) => /✗ inside: #\d+ NtWriteFile → STATUS_INVALID_HANDLE/.test(x)), "NtDelayExecution's header names the failing call inside it");
  const statuses = db.prepare('SELECT DISTINCT status_name FROM syscalls WHERE session_id = ? AND status_name IS NOT NULL').pluck().all(SESSIONS['osr-log-user-handle']) as string[];
  for (const s of statuses) t.ok(n.some((x) => x.includes(s)), `status ${s} in a note`);
});

t.test('1,000 NtClose calls: under 50,000 characters, the rest said in a note', async (t) => {
  const db = open();
  const out = mermaidOf(db, 'big');
  t.ok(out.text.length <= MERMAID_MAX_TEXT, `${out.text.length} characters`);
  t.ok(out.text.length > MERMAID_MAX_TEXT * 0.9, 'and it uses most of the room');
  t.same(checkMermaid(out.text).errors, []);
  t.equal(out.notes.length, 1);
  t.match(out.notes[0], /^… [\d,]+ steps in [\d,]+ calls left out \(limit 50,000 chars\)$/);
  const n = notes(out.text);
  t.equal(n[0], out.notes[0], 'the first note says it');
  const gap = n.find((x) => /more calls like #1 left out/.test(x));
  t.ok(gap, `a note stands for the calls left out: ${gap}`);
  t.match(out.text, /^P1->>P2: ✗ NtClose \(19h\) via sysenter → STATUS_INVALID_HANDLE$/m, 'the first calls are drawn, failed');
  t.match(out.text, /NtTerminateProcess/, 'the last call (a different one) is kept');
  const shown = [...out.text.matchAll(/^Note over P2: ✗ #35;(\d+) NtClose/gm)].length;
  const left = Number(/… ([\d,]+) more/.exec(gap ?? '')?.[1].replace(/,/g, ''));
  t.equal(shown + left, 1000, `${shown} calls drawn + ${left} left out = 1,000`);
  // Tighter limits: still under them, still said.
  for (const limit of [10_000, 2_000, 900]) {
    const small = renderSequenceMermaid(sequenceInput(db, SESSIONS.big, { registerSteps: 0 }), { maxChars: limit });
    t.ok(small.text.length <= limit, `limit ${limit}: ${small.text.length} characters`);
    t.same(checkMermaid(small.text).errors, [], `limit ${limit}: valid`);
    t.match(small.notes[0] ?? '', /left out \(limit [\d,]+ chars\)/, `limit ${limit}: ${small.notes[0]}`);
  }
});

t.test('a step-by-step session over the limit: minor steps go first, failures and call boundaries stay', async (t) => {
  const db = open();
  const input = sequenceInput(db, SESSIONS['osr-log-user-handle'], { registerSteps: 0 });
  const full = renderSequenceMermaid(input);
  const limit = Math.floor(full.text.length * 0.6);
  const cut = renderSequenceMermaid(input, { maxChars: limit });
  t.ok(cut.text.length <= limit, `${cut.text.length} ≤ ${limit}`);
  t.same(checkMermaid(cut.text).errors, []);
  t.equal(cut.notes.length, 1);
  const n = notes(cut.text);
  for (const x of notes(full.text).filter((x) => x.startsWith('✗'))) t.ok(n.includes(x), `failure kept: ${x.slice(0, 60)}`);
  for (const b of input.bands) t.ok(n.some((x) => x.startsWith(`#${b.syscallId} ${b.name} `)), `call #${b.syscallId} ${b.name}'s header kept`);
  t.ok(n.some((x) => /\(\d+ steps? left out\)$/.test(x)), 'a header counts its steps left out');
  t.ok(cut.items < full.items, `${cut.items} of ${full.items} messages`);
});

// ---- the export/ adapter -------------------------------------------------------------------------

t.test('exportMermaid writes the text to the sink; a wrong syscall id is an ExportInputError', async (t) => {
  const db = open();
  const chunks: (string | Uint8Array)[] = [];
  const sink = { write: (c: string | Uint8Array) => void chunks.push(c) };
  const id = callId(db, 'user-apc', "name = 'NtTestAlert'");
  const stats = exportMermaid({ db, sessionId: SESSIONS['user-apc'], syscallId: id }, sink);
  const want = mermaidOf(db, 'user-apc', [id]);
  t.same(chunks, [want.text], 'one chunk: the text');
  t.same(stats, { format: 'mermaid', items: want.items, notes: [] });
  const big = exportMermaid({ db, sessionId: SESSIONS.big }, { write: () => {} });
  t.equal(big.notes.length, 1, 'the elision is in the stats');
  t.throws(() => exportMermaid({ db, sessionId: SESSIONS['user-apc'], syscallId: 999 }, sink), ExportInputError, 'unknown syscall id');
  t.throws(() => exportMermaid({ db, sessionId: 77 }, sink), ExportInputError, 'unknown session');
});
