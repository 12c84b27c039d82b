// The demo page (what `npm start` writes): every built-in scenario recorded into one fresh trace
// file, its projections rebuilt, and a page per scenario — the sequence diagram, the flame chart
// and the call graph, each one self-contained HTML — with an index.html that says in a paragraph
// what each scenario is, then what happened in it, generated from its trace: the calls and their
// statuses (analyzer/narrate.ts), then why what failed failed, which handles were left open and
// which hooks sit in the path — the session's findings (analyzer/findings/), as `ntflow explain`
// prints them. No status, PreviousMode or outcome is written here. It also draws the user-mode
// NtReadFile and the kernel-mode ZwReadFile side by side, and compares four pairs of scenarios
// (`ntflow diff`): what each comparison found, in sentences generated from its result, and a page
// per comparison with the two diagrams aligned. Nothing here computes a picture: viz/ does
// (data → layout → html).
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type Database from 'better-sqlite3';
import { SCENARIOS, ntSuccess, statusName } from '../core/index.js';
import { record, openTraceForReading, type SessionSummary } from '../recorder/index.js';
import { describeCall, diffSessions, narrateSession, readFindings, replayFile, sessionFacts, type FindingRow, type SyscallTableRow } from '../analyzer/index.js';
import {
  describeDiff,
  flameInput,
  graphInput,
  layoutCallGraph,
  layoutFlame,
  layoutSequence,
  renderDiffHtml,
  renderFlameHtml,
  renderGraphHtml,
  renderIndexPage,
  renderSequenceHtml,
  sequenceInput,
  type IndexPart,
  type IndexSection,
} from '../viz/index.js';

export interface DemoPageOptions {
  /** The folder for demo.db and the pages (default 'traces'); created when missing. */
  out?: string;
  /** Progress and the final "open this" lines (default: stdout). */
  log?: (line: string) => void;
  /** Steps per diagram that get registers from time travel (default 60). */
  registerSteps?: number;
}

export interface DemoPageResult {
  /** Absolute paths. */
  index: string;
  db: string;
  /** Every page written, index.html included. */
  pages: string[];
  seconds: number;
}

/**
 * What each scenario is, in a paragraph: the program, its drivers and the mechanism it exercises
 * (documentation, from the scenario sources' header comments). What happened — statuses,
 * PreviousMode, handle tables, probes, APCs, hooks, the outcome, why a call failed — is never
 * written here: the page generates it from each scenario's trace (whatHappened below), so these
 * say what a program does, never what came of it.
 */
export const SCENARIO_NOTES: Record<string, string[]> = {
  'user-nt-readfile': [
    'The path this project exists to show. The program calls ntdll!NtReadFile, a stub of four instructions: it puts the service number 0B7h in EAX, points EDX at SharedUserData!SystemCallStub and calls it. The stub executes SYSENTER; the CPU takes its new EIP from MSR 0x176 and enters ring 0 at nt!KiFastCallEntry, which builds the trap frame and continues into KiSystemService.',
    'There the dispatcher indexes the service table with the number in EAX, copies the argument bytes from the caller\'s stack (after checking EDX against MmUserProbeAddress) and calls the routine the table names. NtReadFile reads PreviousMode and references the handle; for a user-mode caller it also probes the user buffers before it writes to them. On the way out KiServiceExit checks for user APCs and returns to ring 3.',
  ],
  'user-zw-readfile': [
    'Nt versus Zw, first half: the program calls ntdll!ZwReadFile instead of ntdll!NtReadFile. In ntdll the two names are one stub at one address (0x77F761E8), so the call is made by the same instructions as in user-nt-readfile: compare the two diagrams.',
  ],
  'kernel-zw-readfile': [
    "Nt versus Zw, second half: in the kernel the prefix matters. A driver opens a file with OBJ_KERNEL_HANDLE in DriverEntry; its read dispatch routine, running in the program's thread while it serves the program's NtReadFile, reads that file with nt!ZwReadFile. The kernel stub does not use SYSENTER: it builds a fake interrupt frame (pushfd; push 8, the kernel code selector) and calls KiSystemService, which takes PreviousMode from the CS in that frame.",
  ],
  'kernel-nt-readfile': [
    'The same driver, except that its read dispatch routine calls nt!NtReadFile directly instead of ZwReadFile, with the kernel handle (bit 31 set) it opened with OBJ_KERNEL_HANDLE. A direct call goes through no dispatcher, so nothing on the way sets PreviousMode.',
  ],
  'osr-log-user-handle': [
    'From OSR\'s article "Nt vs. Zw — Clearing Confusion on the Native API": a logging driver opens its log file with ZwCreateFile, without OBJ_KERNEL_HANDLE, while it serves the program\'s DeviceIoControl (in the program\'s thread). Then it writes a line with NtWriteFile and one with ZwWriteFile, twice: from its read dispatch routine, in the program\'s thread, and from a work item, which runs on a System worker thread. Each write passes the driver\'s own, kernel-mode, buffers.',
  ],
  'osr-log-kernel-handle': [
    'The same driver and program with one difference: the log file is opened with OBJ_KERNEL_HANDLE, which asks for a handle in the kernel handle table. The same four writes follow: NtWriteFile and ZwWriteFile from the read dispatch routine and from the work item.',
  ],
  'kernel-nt-close': [
    "A driver opens a file with OBJ_KERNEL_HANDLE in DriverEntry and, while serving a program's read, closes that handle by calling nt!NtClose directly instead of ZwClose.",
  ],
  'zw-protect-virtual-memory': [
    'A system call with an effect on the machine itself. The program allocates a read/write page and writes to it, makes it read-only with ntdll!ZwProtectVirtualMemory (service 0x89, five arguments; nt!NtProtectVirtualMemory edits the page tables), then writes to it again.',
  ],
  'int2e-readfile': [
    "user-nt-readfile on a CPU without SYSENTER (the path before the Pentium II). ntdll's stub goes through SharedUserData's KiIntSystemCall, which executes INT 2Eh; the IDT gate leads to nt!KiSystemService at ring 0, and IRETD leads back.",
  ],
  'user-apc': [
    "The APC check at the end of every system call. The program queues a user APC to its own thread with NtQueueApcThread(NtCurrentThread(), ApcRoutine, 1, 2, 3) while not in an alertable wait, then calls NtTestAlert. KiServiceExit looks at UserApcPending on every return to user mode; a pending APC is delivered through ntdll!KiUserApcDispatcher, which calls the routine and resumes the thread with NtContinue. The APC routine returns the sum of its arguments, and the program passes what it returned to NtTerminateProcess as its exit status.",
  ],
  'invalid-service': [
    "Service numbers past the end of the service tables, made by hand the way ntdll's stubs make calls: 0x11C, one past ntoskrnl's last service; 0x1000, a win32k service, from a thread that is not a GUI thread yet (for a win32k number KiSystemService converts the thread to a GUI thread and looks the number up again in the shadow table); and 0x1FFF, past win32k's table.",
  ],
  'ssdt-hook': [
    "The hook 2000s rootkits and security products used. A driver replaces KiServiceTable[0xB7], nt!NtReadFile's entry in the System Service Descriptor Table, with its own routine, lifting CR0.WP around the write because the kernel image is read-only. The hook counts the call and jumps to the original nt!NtReadFile. Then the program reads its file as user-nt-readfile does.",
  ],
  'kifastcallentry-hook': [
    'A hook inside the dispatcher itself. The driver patches the five bytes after mov ebx,[edi+eax*4] — the SSDT lookup — with a jump to its filter: at that spot EAX is the service index, EDI the table, EBX the routine about to run and ECX the argument bytes, for every service at once. The filter counts NtReadFile calls, runs the two instructions it displaced and jumps back. Then the program reads its file as user-nt-readfile does.',
  ],
};

/**
 * The built-in comparisons (`ntflow diff A B`), each with why the two are worth comparing — what
 * differs in how they are made, never what came of it: that is generated from the diff's result.
 */
export const COMPARISONS: { a: string; b: string; why: string }[] = [
  { a: 'user-nt-readfile', b: 'kernel-zw-readfile', why: 'The same NtReadFile, called by a program through ntdll and SYSENTER, and by a driver through nt!ZwReadFile while it serves the program\'s read.' },
  { a: 'osr-log-user-handle', b: 'osr-log-kernel-handle', why: 'The same logging driver and program; the log file is opened without OBJ_KERNEL_HANDLE on the left, with it on the right.' },
  { a: 'user-nt-readfile', b: 'ssdt-hook', why: 'The same program; on the right a driver has replaced KiServiceTable[0xB7] before it runs.' },
  { a: 'user-nt-readfile', b: 'int2e-readfile', why: 'The same program on a CPU with SYSENTER and on one without (INT 2Eh).' },
];

/** The file name of a comparison's page. */
export const comparisonPage = (c: { a: string; b: string }) => `diff-${c.a}-vs-${c.b}.html`;

const INTRO = [
  'Each scenario below ran on ntflow\'s emulated IA-32 machine with a miniature Windows XP SP1, and everything on these pages is drawn from its recorded trace: one lane per module, ring 3 (the program, ntdll, SharedUserData) on the left and ring 0 (the dispatcher, the service routine, KiServiceExit, drivers) on the right; an arrow per call, jump, SYSENTER/SYSEXIT, INT/IRETD, with the service number, MSR 0x176, the SSDT entry, PreviousMode, the APC check and each NTSTATUS (failures in red).',
  'On a diagram (drawn at its own size, no text below 11 px): drag or scroll to pan, ctrl + scroll to zoom, click a system call\'s band or a call arrow to collapse or expand it, hover a step for its registers, arguments and status, and type a symbol into the search box (what it finds is opened; Enter jumps to the next match). What ntflow found in a session is listed beside its diagram and drawn on it: a red note where a call failed and why, an amber one where a hook ran; "next failure" (or the n key) goes from one failed call to the next. Every page is a single file that works offline.',
];

/** The columns of a syscalls row the demo page reads. */
export type SyscallSummary = Pick<SyscallTableRow, 'id' | 'name' | 'caller_cpl' | 'entry' | 'previous_mode' | 'status' | 'status_name'>;

function syscallsOf(db: Database.Database, sessionId: number): SyscallSummary[] {
  return db.prepare('SELECT id, name, caller_cpl, entry, previous_mode, status, status_name FROM syscalls WHERE session_id = ? ORDER BY id').all(sessionId) as SyscallSummary[];
}

const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;
const SEVERITY_WORDS: Record<string, string> = { error: 'Error', warning: 'Warning', info: 'Note' };

/**
 * The findings as paragraphs: how many of each kind, then each finding's title and explanation;
 * with none, what the data says instead — every call that returned succeeded (each with its
 * status), no handle left open, no hook; or which failed call no finding explains.
 */
export function findingsParagraphs(findings: readonly FindingRow[], calls: readonly SyscallSummary[]): string[] {
  const count = (kind: string) => findings.filter((f) => f.kind === kind).length;
  const head = `What ntflow found in the trace ('ntflow explain'): ${plural(count('failure-cause'), 'failed call')} explained, ${plural(count('handle-leak'), 'handle')} left open, ${plural(count('hook'), 'hook')}.`;
  const name = (c: SyscallSummary) => `#${c.id} ${c.name ?? 'rejected call'}`;
  const explained = new Set(findings.filter((f) => f.kind === 'failure-cause').map((f) => f.syscall_id));
  const unexplained = calls.filter((c) => c.status !== null && !ntSuccess(c.status) && !explained.has(c.id));
  const tail = unexplained.length ? [`No finding explains ${unexplained.map((c) => `${name(c)} → ${c.status_name ?? statusName(c.status!)}`).join(', ')}.`] : [];
  if (findings.length) return [head, ...findings.map((f) => `${SEVERITY_WORDS[f.severity] ?? f.severity}: ${f.title}. ${f.detail}`), ...tail];
  if (unexplained.length) return [head, ...tail];
  const returned = calls.filter((c) => c.status !== null);
  const open = calls.filter((c) => c.status === null);
  const statuses = returned.map((c) => `${name(c)} → ${c.status_name ?? statusName(c.status!)}`).join(', ');
  const which = returned.length === 1 ? 'the one call that returned' : returned.length === 2 ? 'both calls that returned' : `all ${returned.length} calls that returned`;
  const succeeded = returned.length ? `${which} succeeded (${statuses})` : 'no call returned';
  const notReturned = open.length ? `, ${open.map(name).join(', ')} did not return` : '';
  return [`${head} No system call failed: ${succeeded}${notReturned}; no handle was left open and no hook sits in the path.`];
}

/** What happened in a session, from its trace: the calls and how it ended (analyzer's narrateSession), then the findings. */
export function whatHappened(db: Database.Database, sessionId: number): string[] {
  return [...narrateSession(sessionFacts(db, sessionId)), ...findingsParagraphs(readFindings(db, sessionId), syscallsOf(db, sessionId))];
}

/** Records every scenario into <out>/demo.db (a fresh file) and writes the pages; prints where. */
export async function runDemoPage(options: DemoPageOptions = {}): Promise<DemoPageResult> {
  const started = performance.now();
  const out = resolve(options.out ?? 'traces');
  const log = options.log ?? ((line: string) => process.stdout.write(line + '\n'));
  const registerSteps = options.registerSteps ?? 60;
  mkdirSync(out, { recursive: true });
  const dbPath = join(out, 'demo.db');
  for (const suffix of ['', '-wal', '-shm', '-journal']) rmSync(dbPath + suffix, { force: true });

  // 1. Record every built-in scenario into one file, then rebuild its projections.
  const summaries = new Map<string, SessionSummary>();
  for (const s of SCENARIOS) {
    const summary = await record({ scenario: s.name }, { output: dbPath, name: s.name });
    if (summary.status !== 'complete') throw new Error(`scenario ${s.name}: the recording did not complete`);
    summaries.set(s.name, summary);
  }
  log(`recorded ${SCENARIOS.length} scenarios into ${dbPath} (${((performance.now() - started) / 1000).toFixed(1)} s)`);
  replayFile(dbPath);

  // 2. A sequence diagram, a flame chart and a call graph per scenario.
  const db = openTraceForReading(dbPath);
  const pages: string[] = [];
  const write = (file: string, html: string) => {
    const path = join(out, file);
    writeFileSync(path, html);
    pages.push(path);
  };
  const sections: IndexSection[] = [];
  try {
    for (const s of SCENARIOS) {
      const summary = summaries.get(s.name)!;
      const id = summary.sessionId;
      // What the scenario is (documentation), then what happened (generated from its trace).
      const notes = [...(SCENARIO_NOTES[s.name] ?? [s.summary]), ...whatHappened(db, id)];
      const back = { href: `index.html#${s.name}`, text: '← all scenarios' };
      write(`${s.name}.html`, renderSequenceHtml(layoutSequence(sequenceInput(db, id, { registerSteps })), { title: `${s.name}: sequence diagram`, description: notes, back }));
      write(`${s.name}.flame.html`, renderFlameHtml(layoutFlame(flameInput(db, id)), { title: `${s.name}: flame chart`, description: notes, back }));
      write(`${s.name}.graph.html`, renderGraphHtml(layoutCallGraph(graphInput(db, id)), { title: `${s.name}: call graph`, description: notes, back }));
      const calls = syscallsOf(db, id)
        .map((c) => `${c.name ?? 'rejected'} ${c.previous_mode ?? ''} → ${c.status_name ?? 'did not return'}`.replace(/\s+/g, ' '))
        .join(', ');
      sections.push({
        id: s.name,
        title: s.name,
        paragraphs: notes,
        facts: [
          ['outcome', summary.outcome?.description ?? summary.status],
          ['instructions', String(summary.instructions)],
          ['system calls', calls || 'none'],
        ],
        links: [
          { href: `${s.name}.html`, text: 'sequence diagram' },
          { href: `${s.name}.flame.html`, text: 'flame chart' },
          { href: `${s.name}.graph.html`, text: 'call graph' },
        ],
      });
    }

    // 3. Side by side: the program's NtReadFile and the driver's ZwReadFile (KernelMode).
    const userId = summaries.get('user-nt-readfile')!.sessionId;
    const kernelId = summaries.get('kernel-zw-readfile')!.sessionId;
    const userCall = db.prepare("SELECT id FROM syscalls WHERE session_id = ? AND name = 'NtReadFile' AND caller_cpl = 3 ORDER BY id LIMIT 1").pluck().get(userId) as number | undefined;
    const kernelCall = db.prepare("SELECT id FROM syscalls WHERE session_id = ? AND name = 'NtReadFile' AND entry = 'zw-kernel' ORDER BY id LIMIT 1").pluck().get(kernelId) as
      | number
      | undefined;
    if (userCall === undefined || kernelCall === undefined) throw new Error('the demo trace lacks the NtReadFile calls of user-nt-readfile or kernel-zw-readfile');
    const userLayout = layoutSequence(sequenceInput(db, userId, { syscallIds: [userCall], registerSteps }), { laneWidth: 150 });
    const kernelLayout = layoutSequence(sequenceInput(db, kernelId, { syscallIds: [kernelCall], registerSteps }), { laneWidth: 150 });
    const fitWidth = Math.max(userLayout.width, kernelLayout.width);
    const userFacts = sessionFacts(db, userId).calls;
    const kernelFacts = sessionFacts(db, kernelId).calls;
    sections.unshift({
      id: 'nt-vs-zw',
      title: 'Nt vs Zw, side by side',
      summary: 'user-nt-readfile (left) and kernel-zw-readfile (right): the same service, 0B7h, reached two ways',
      paragraphs: [
        'Left: a program calls ntdll!NtReadFile, whose stub enters the kernel with SYSENTER through SharedUserData and KiFastCallEntry. Right: a driver calls nt!ZwReadFile, whose kernel stub pushes a fake interrupt frame with CS = 8 and calls KiSystemService, with no ring transition. Same routine, same service number; what it checks depends on the PreviousMode it reads. From the two traces:',
        `Left, user-nt-readfile: ${describeCall(userFacts.find((c) => c.id === userCall)!, userFacts, { sayNoProbes: true })}`,
        `Right, kernel-zw-readfile: ${describeCall(kernelFacts.find((c) => c.id === kernelCall)!, kernelFacts, { sayNoProbes: true })}`,
      ],
      links: [
        { href: 'user-nt-readfile.html', text: 'user-nt-readfile, whole session' },
        { href: 'kernel-zw-readfile.html', text: 'kernel-zw-readfile, whole session' },
      ],
      diagrams: [
        { kind: 'sequence', layout: userLayout, caption: 'user-nt-readfile: ntdll!NtReadFile from ring 3', collapse: 'none', fitWidth },
        { kind: 'sequence', layout: kernelLayout, caption: 'kernel-zw-readfile: nt!ZwReadFile from a driver (ring 0)', collapse: 'none', fitWidth },
      ],
    });
  } finally {
    db.close();
  }

  // 4. The comparisons: each pair of sessions diffed, a page for each, what it found in the index.
  const cdb = openTraceForReading(dbPath);
  try {
    const parts: IndexPart[] = COMPARISONS.map((c) => {
      const side = (name: string) => ({ db: cdb, file: dbPath, sessionId: summaries.get(name)!.sessionId });
      const result = diffSessions(side(c.a), side(c.b));
      const file = comparisonPage(c);
      const back = { href: 'index.html#comparisons', text: '← all scenarios and comparisons' };
      write(file, renderDiffHtml(result, side(c.a), side(c.b), { title: `${c.a} vs ${c.b}: ntflow diff`, description: [c.why], back, registerSteps }));
      return {
        id: `diff-${c.a}-vs-${c.b}`,
        title: `${c.a} vs ${c.b}`,
        paragraphs: [c.why, ...describeDiff(result)],
        links: [{ href: file, text: 'the two diagrams side by side, aligned' }],
      };
    });
    sections.splice(1, 0, {
      id: 'comparisons',
      title: 'Comparisons',
      summary: "four pairs of scenarios compared with 'ntflow diff': system calls aligned, where the paths part and join again, what differs in outcome",
      paragraphs: [
        "Each comparison below aligns the two sessions' system calls (a call only on one side stays unpaired), walks their instruction streams side by side, and says where each pair's paths first part and where they join again, and what differs in outcome. The sentences are generated from the comparison's result; its page draws the two sequence diagrams side by side, row against row.",
      ],
      parts,
    });
  } finally {
    cdb.close();
  }

  const index = join(out, 'index.html');
  writeFileSync(index, renderIndexPage(sections, { title: 'ntflow: the Windows XP system-call path, drawn from traces', intro: INTRO }));
  pages.unshift(index);
  const seconds = (performance.now() - started) / 1000;
  log(`wrote ${pages.length} pages in ${seconds.toFixed(1)} s; open ${index}`);
  log(`  ${pathToFileURL(index).href}`);
  return { index, db: dbPath, pages, seconds };
}
