// The demo page (what `npm start` writes): every built-in scenario recorded into one fresh trace
// file, its projections rebuilt, and a page per scenario — the sequence diagram, the flame chart
// and the call graph, each one self-contained HTML — with an index.html that says in a paragraph
// what each scenario teaches and draws the user-mode NtReadFile and the kernel-mode ZwReadFile
// side by side. Nothing here computes a picture: viz/ does (data → layout → html).
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type Database from 'better-sqlite3';
import { SCENARIOS } from '../core/index.js';
import { record, openTraceForReading, type SessionSummary } from '../recorder/index.js';
import { replayFile } from '../analyzer/index.js';
import { flameInput, graphInput, layoutCallGraph, layoutFlame, layoutSequence, renderFlameHtml, renderGraphHtml, renderIndexPage, renderSequenceHtml, sequenceInput, type IndexSection } from '../viz/index.js';

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

/** What each scenario shows, in a paragraph or two (from the scenario sources' header comments). */
export const SCENARIO_NOTES: Record<string, string[]> = {
  'user-nt-readfile': [
    'The path this project exists to show. The program calls ntdll!NtReadFile, a stub of four instructions: it puts the service number 0B7h in EAX, points EDX at SharedUserData!SystemCallStub and calls it. The stub executes SYSENTER; the CPU takes its new EIP from MSR 0x176 and arrives at ring 0 in nt!KiFastCallEntry, which builds the trap frame, records PreviousMode = UserMode and continues into KiSystemService.',
    'There the dispatcher indexes KiServiceTable with 0B7h, copies 24h bytes of arguments from the user stack (after checking EDX against MmUserProbeAddress) and calls nt!NtReadFile. Because the caller was in user mode, NtReadFile references the handle in the process handle table and probes every user buffer before it writes to it. On the way out KiServiceExit checks for user APCs (none pending) and SYSEXIT returns to ring 3.',
  ],
  'user-zw-readfile': [
    'Nt versus Zw, first half: from user mode there is no difference. ntdll!NtReadFile and ntdll!ZwReadFile are one stub at one address (0x77F761E8), so this diagram is, step for step, the one of user-nt-readfile: the same SYSENTER, the same dispatch through SSDT[0xB7], PreviousMode UserMode, the same probes.',
  ],
  'kernel-zw-readfile': [
    "Nt versus Zw, second half: in the kernel the prefix decides everything. A driver's read dispatch routine, running in the program's thread while it serves the program's NtReadFile, reads a file with nt!ZwReadFile. That kernel stub does not use SYSENTER: it builds a fake interrupt frame (pushfd; push 8, the kernel code selector) and calls KiSystemService directly.",
    'KiSystemService sees CS = 8 in that frame and sets PreviousMode = KernelMode for the nested call. NtReadFile then trusts its caller: the handle the driver opened with OBJ_KERNEL_HANDLE is valid, the kernel buffers are not probed, and the read succeeds — the nested band inside the program\'s own call.',
  ],
  'kernel-nt-readfile': [
    "The classic driver bug. The same driver calls nt!NtReadFile directly instead of ZwReadFile. No dispatcher runs, so nothing resets PreviousMode: it is still UserMode, left there by the program's call the driver is serving.",
    'NtReadFile therefore treats the driver as a user-mode caller. A handle with bit 31 set is a kernel handle only for a KernelMode caller, so the lookup fails with STATUS_INVALID_HANDLE before any buffer is probed — and the program\'s own read fails with it.',
  ],
  'osr-log-user-handle': [
    'From OSR\'s article "Nt vs. Zw — Clearing Confusion on the Native API": a logging driver opens its log file without OBJ_KERNEL_HANDLE. The open happens in the program\'s thread, so the handle lands in the program\'s process handle table.',
    "From the read dispatch routine, NtWriteFile (PreviousMode UserMode) finds that handle, but its IO_STATUS_BLOCK is a kernel-mode buffer and fails the user-mode probe: STATUS_ACCESS_VIOLATION. ZwWriteFile goes through KiSystemService as KernelMode, skips the probes and succeeds. Later a work item runs on a System worker thread, where the handle value names nothing in the kernel handle table: STATUS_INVALID_HANDLE for both writes.",
  ],
  'osr-log-kernel-handle': [
    'The same driver with OBJ_KERNEL_HANDLE: ZwCreateFile runs as KernelMode, honours the flag, and the handle goes into the kernel handle table with bit 31 set.',
    'From the dispatch routine, NtWriteFile still fails — PreviousMode is UserMode, and a user-mode caller cannot use a kernel handle (STATUS_INVALID_HANDLE) — while ZwWriteFile succeeds. From the work item on the System thread both succeed. The lesson: a kernel handle, and the Zw call.',
  ],
  'kernel-nt-close': [
    "A driver serving a program's read closes its kernel handle with nt!NtClose called directly. PreviousMode is UserMode (the program's call), so NtClose looks the handle up in the program's handle table, finds nothing and returns STATUS_INVALID_HANDLE.",
    'Nothing else closes the kernel handle: it leaks, still open in the kernel handle table. The failing status is the only trace of the bug, and this diagram shows where it comes from.',
  ],
  'zw-protect-virtual-memory': [
    'A system call with an effect on the machine itself. ntdll!ZwProtectVirtualMemory (service 0x89, five arguments) reaches nt!NtProtectVirtualMemory through SYSENTER and KiServiceTable[0x89], which clears the writable bit of a page in the page tables.',
    "The program's next write to that page raises #PF at ring 3 (a user write to a read-only page), and its thread dies with STATUS_ACCESS_VIOLATION: the exception arrow at the end of the diagram.",
  ],
  'int2e-readfile': [
    'user-nt-readfile on a CPU without SYSENTER (the path before the Pentium II). ntdll\'s stub goes through SharedUserData\'s KiIntSystemCall, which executes INT 2Eh; the IDT gate carries the thread to nt!KiSystemService at ring 0, and IRETD brings it back. Same service number, same dispatch, same PreviousMode: only the pair of ring-transition arrows differs.',
  ],
  'user-apc': [
    "The APC check at the end of every system call. NtQueueApcThread queues a user APC to the program's own thread but does not make it pending (the thread is not in an alertable wait), so KiServiceExit's check on that call finds nothing.",
    "NtTestAlert sees the queued APC and sets UserApcPending. On its way out the check finds it: KiDeliverApc redirects the return to ring 3 into ntdll!KiUserApcDispatcher, which calls the APC routine with its three arguments and resumes the thread with NtContinue. The program's exit status, 6, is the sum 1 + 2 + 3 the APC routine computed.",
  ],
  'invalid-service': [
    "Service numbers the dispatcher must reject, made by hand the way ntdll's stubs make calls. 0x11C is one past ntoskrnl's last service: KiSystemService's limit check fails and the call returns STATUS_INVALID_SYSTEM_SERVICE without running any routine.",
    "0x1000 is a win32k service from a thread that is not a GUI thread yet: the check fails against the plain service table, the thread is converted to a GUI thread (its table becomes the shadow table) and the call is retried, reaching NtGdiAbortDoc, which this miniature's win32k does not implement. 0x1FFF is past win32k's table even for a GUI thread.",
  ],
  'ssdt-hook': [
    "The hook 2000s rootkits and security products used. A driver replaces KiServiceTable[0xB7], nt!NtReadFile's entry in the System Service Descriptor Table, with its own routine, lifting CR0.WP around the write because the kernel image is read-only.",
    "From then on the dispatcher's lookup for 0B7h yields the driver's HookNtReadFile (see the SSDT arrow, which now points into the driver's lane). The hook counts the call and jumps to the original nt!NtReadFile, so the program still reads its file.",
  ],
  'kifastcallentry-hook': [
    'A hook inside the dispatcher itself. The driver patches the five bytes after mov ebx,[edi+eax*4] — the SSDT lookup — with a jump to its filter: at that spot EAX is the service index, EDI the table, EBX the routine about to run and ECX the argument bytes, for every service at once.',
    'The filter counts NtReadFile calls, runs the two instructions it displaced and jumps back; NtReadFile itself still works. The diagram shows the detour from KiSystemService into the driver and back before the call of the service routine.',
  ],
};

const INTRO = [
  'Each scenario below ran on ntflow\'s emulated IA-32 machine with a miniature Windows XP SP1, and everything on these pages is drawn from its recorded trace: one lane per module, ring 3 (the program, ntdll, SharedUserData) on the left and ring 0 (the dispatcher, the service routine, KiServiceExit, drivers) on the right; an arrow per call, jump, SYSENTER/SYSEXIT, INT/IRETD, with the service number, MSR 0x176, the SSDT entry, PreviousMode, the APC check and each NTSTATUS (failures in red).',
  'On a diagram: drag to pan, scroll to zoom, click a system call\'s band or a call arrow to collapse or expand it, hover a step for its registers, arguments and status, and type a symbol into the search box (Enter jumps to the next match). Every page is a single file that works offline.',
];

interface SyscallSummary {
  id: number;
  name: string | null;
  caller_cpl: number;
  entry: string | null;
  previous_mode: string | null;
  status_name: string | null;
}

function syscallsOf(db: Database.Database, sessionId: number): SyscallSummary[] {
  return db.prepare('SELECT id, name, caller_cpl, entry, previous_mode, status_name FROM syscalls WHERE session_id = ? ORDER BY id').all(sessionId) as SyscallSummary[];
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
      const notes = SCENARIO_NOTES[s.name] ?? [s.summary];
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
        summary: s.summary,
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
    sections.unshift({
      id: 'nt-vs-zw',
      title: 'Nt vs Zw, side by side',
      summary: 'user-nt-readfile (left) and kernel-zw-readfile (right): the same service, 0B7h, reached two ways',
      paragraphs: [
        'Left: a program calls ntdll!NtReadFile. The stub enters the kernel with SYSENTER through SharedUserData, KiFastCallEntry records PreviousMode = UserMode, and NtReadFile probes the user buffers.',
        'Right: a driver calls nt!ZwReadFile. There is no SYSENTER and no ring transition: the kernel stub pushes a fake interrupt frame with CS = 8 and calls KiSystemService, which sets PreviousMode = KernelMode, so NtReadFile accepts the kernel handle and skips the probes. Same routine, same service number; the previous mode decides what it checks.',
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

  const index = join(out, 'index.html');
  writeFileSync(index, renderIndexPage(sections, { title: 'ntflow: the Windows XP system-call path, drawn from traces', intro: INTRO }));
  pages.unshift(index);
  const seconds = (performance.now() - started) / 1000;
  log(`wrote ${pages.length} pages in ${seconds.toFixed(1)} s; open ${index}`);
  log(`  ${pathToFileURL(index).href}`);
  return { index, db: dbPath, pages, seconds };
}
