// Browser tests: Debian's Chromium (/usr/bin/chromium) driven by playwright-core; never a
// downloaded browser. Without it a developer sees a visible skip; in CI (CI=true, where .ci/run
// installs the chromium package) its absence is a failure. Also the hand-made layouts the HTML
// tests draw: a small NtReadFile-like sequence with a hostile file name, and a large one.
import { existsSync } from 'node:fs';
import type { Browser, ConsoleMessage, Page, Request } from 'playwright-core';
import { scenarioSource, type ProgramSource } from '../../core/index.js';
import type { LaidBand, LaidLane, LaidStep, SequenceLayout } from '../../viz/index.js';

export const CHROMIUM = '/usr/bin/chromium';

/** The flags of DESIGN.md ("Setup facts"): headless, no sandbox (containers), nothing phoning home. */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
];

/** null when Chromium is usable, else why not (with the install command). */
export function chromiumMissing(): string | null {
  return existsSync(CHROMIUM) ? null : `Debian's Chromium is not installed at ${CHROMIUM} (apt-get install -y chromium)`;
}

interface SkippableTest {
  skip(...args: any[]): unknown;
  fail(...args: any[]): unknown;
}

/** Call at the top of a tap test: true when Chromium is there; else skip (or fail when CI=true). */
export function haveChromium(t: SkippableTest): boolean {
  const missing = chromiumMissing();
  if (missing === null) return true;
  if (process.env.CI === 'true') t.fail(`${missing}; CI must install it (.ci/run)`);
  else t.skip(missing);
  return false;
}

export async function launchChromium(): Promise<Browser> {
  const { chromium } = await import('playwright-core');
  return chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
}

/** What a page did while it was open: console errors, page errors, requests, dialogs. */
export interface PageWatch {
  errors: string[];
  requests: string[];
  dialogs: string[];
}

/** Records console errors, uncaught errors, every request and every dialog (dismissed). */
export function watchPage(page: Page): PageWatch {
  const watch: PageWatch = { errors: [], requests: [], dialogs: [] };
  page.on('console', (m: ConsoleMessage) => {
    if (m.type() === 'error') watch.errors.push(m.text());
  });
  page.on('pageerror', (e: Error) => watch.errors.push(`uncaught: ${e.message}`));
  page.on('request', (r: Request) => watch.requests.push(r.url()));
  page.on('dialog', (d) => {
    watch.dialogs.push(`${d.type()}: ${d.message()}`);
    void d.dismiss();
  });
  return watch;
}

/** Requests other than the page itself and data: URLs (a self-contained page makes none). */
export function foreignRequests(watch: PageWatch, pageUrl: string): string[] {
  return watch.requests.filter((u) => u !== pageUrl && !u.startsWith('data:'));
}

// ---- programs ------------------------------------------------------------------------------------

/**
 * user-nt-readfile with a hostile name: the program file is called `<img src=x onerror=alert(1)>.asm`
 * (so the session, the program's lane and its symbols carry it) and it opens `\??\C:\` + that name,
 * which fails (STATUS_OBJECT_NAME_INVALID, drawn red).
 */
export function hostileProgram(): ProgramSource {
  let source = scenarioSource('user-nt-readfile.asm').source.replace(/^; ntflow-file:.*$/m, ';');
  const chars = [...('\\??\\C:\\' + HOSTILE_FILE)].map((c) => `'${c}'`).join(', ');
  source = source.replace(/^ {4}dw '\\', '\?'.*$/m, `    dw ${chars}`);
  if (!source.includes("'<', 'i', 'm', 'g'")) throw new Error('hostileProgram: the file name line of user-nt-readfile.asm moved');
  return { fileName: `${HOSTILE_FILE}.asm`, source };
}

/** user-nt-readfile reading `reads` times in a loop: reads + 3 system calls (create, close, exit). */
export function manyReadsProgram(reads: number): ProgramSource {
  let source = scenarioSource('user-nt-readfile.asm').source;
  const loopStart = '    push 0                                  ; Key';
  const keep = '    mov ebx, eax                            ; keep the status';
  if (!source.includes(loopStart) || !source.includes(keep)) throw new Error('manyReadsProgram: user-nt-readfile.asm changed');
  source = source.replace(loopStart, `    mov esi, ${reads}\n.again:\n${loopStart}`).replace(keep, `${keep}\n    dec esi\n    jnz .again`);
  return { fileName: 'many-reads.asm', source };
}

// ---- hand-made layouts ---------------------------------------------------------------------------

export const HOSTILE_FILE = '<img src=x onerror=alert(1)>';
export const SCRIPT_BREAKER = '</script><script>alert(1)</script>';

const LANES: Omit<LaidLane, 'x' | 'width'>[] = [
  { id: 'program', label: 'user-nt-readfile.exe', ring: 3 },
  { id: 'ntdll', label: 'ntdll', ring: 3 },
  { id: 'SharedUserData', label: 'SharedUserData', ring: 3 },
  { id: 'nt-entry', label: 'KiFastCallEntry / KiSystemService', ring: 0 },
  { id: 'nt-service', label: 'nt!NtReadFile', ring: 0 },
  { id: 'nt-exit', label: 'KiServiceExit', ring: 0 },
];

const REGISTERS = 'EAX=000000b7 EBX=00000000 ECX=0012ff58 EDX=7ffe0300\nESI=00000000 EDI=00000000 EBP=0012ff90 ESP=0012ff44\nEIP=77f761ed EFL=00000246 CS=001b SS=0023';

type StepSpec = [kind: LaidStep['kind'], from: string, to: string, label: string, extra?: Partial<LaidStep>];

/** One NtReadFile call, as data.ts + layout.ts would lay it out (the numbers are hand-made). */
function ntReadFileSteps(syscallId: number, callBase: number, fileName: string, failed: boolean): StepSpec[] {
  const status = failed ? { code: 0xc0000008, name: 'STATUS_INVALID_HANDLE', failed: true } : { code: 0, name: 'STATUS_SUCCESS', failed: false };
  // callId as viz/data.ts sets it: the innermost frame holding the step's event, so an entering
  // step (call, sysenter) already carries the callee's frame (calls.enter_seq is that instruction).
  const [stub, systemCallStub, kernel, service] = [callBase, callBase + 1, callBase + 2, callBase + 3];
  return [
    ['call', 'program', 'ntdll', 'call ntdll!NtReadFile · EAX = 0B7h', { callId: stub, detail: { arguments: `FileHandle=7e8 Buffer=0012fe00 Length=64 (${fileName})` } }],
    ['note', 'ntdll', 'ntdll', 'mov eax,0B7h; mov edx,7FFE0300h', { callId: stub }],
    ['call', 'ntdll', 'SharedUserData', 'call edx (SharedUserData!SystemCallStub)', { callId: systemCallStub }],
    ['sysenter', 'SharedUserData', 'nt-entry', 'sysenter: MSR[176] = 8053A270 → KiFastCallEntry', { callId: kernel }],
    ['jump', 'nt-entry', 'nt-entry', 'jmp nt!KiSystemService+0x5c', { callId: kernel }],
    ['call', 'nt-entry', 'nt-service', 'SSDT[0xB7] → nt!NtReadFile', { callId: service }],
    ['note', 'nt-service', 'nt-service', 'PreviousMode = UserMode', { callId: service }],
    ['note', 'nt-service', 'nt-service', `file: ${fileName}`, { callId: service }],
    ['return', 'nt-service', 'nt-entry', `ret 24h · ${status.name}`, { callId: service, status }],
    ['jump', 'nt-entry', 'nt-exit', 'jmp nt!KiServiceExit', { callId: kernel }],
    ['note', 'nt-exit', 'nt-exit', 'APC check: user APC pending = no', { callId: kernel }],
    ['sysexit', 'nt-exit', 'SharedUserData', 'sysexit → SharedUserData!SystemCallStub+0x4', { callId: kernel }],
    ['return', 'SharedUserData', 'ntdll', 'ret → ntdll!NtReadFile+0xc', { callId: systemCallStub }],
    ['return', 'ntdll', 'program', `ret 24h · ${status.name}`, { callId: stub, status }],
  ].map((s) => {
    const spec = s as StepSpec;
    const extra = { ...(spec[4] ?? {}), syscallId };
    return [spec[0], spec[1], spec[2], spec[3], extra] as StepSpec;
  });
}

/**
 * A sequence layout of `calls` NtReadFile calls (bands), the first failing when `failFirst`. The
 * numbers follow a simple grid: lanes 150 px apart, rows 24 px, a band header row per call.
 */
export function sequenceFixture(options: { calls?: number; fileName?: string; title?: string; failFirst?: boolean } = {}): SequenceLayout {
  const calls = options.calls ?? 1;
  const fileName = options.fileName ?? HOSTILE_FILE;
  const laneWidth = 150;
  const headerHeight = 64;
  const rowHeight = 24;
  const left = 20;
  const lanes: LaidLane[] = LANES.map((l, i) => ({ ...l, x: left + laneWidth * i + laneWidth / 2, width: laneWidth }));
  const x = new Map(lanes.map((l) => [l.id, l.x]));
  const steps: LaidStep[] = [];
  const bands: LaidBand[] = [];
  let y = headerHeight;
  let seq = 100;
  for (let c = 0; c < calls; c++) {
    const syscallId = c + 1;
    const failed = options.failFirst === true && c === 0;
    const y0 = y;
    y += rowHeight; // the band's header row
    const specs = ntReadFileSteps(syscallId, c * 10 + 1, fileName, failed);
    const firstSeq = seq;
    for (const [kind, from, to, label, extra] of specs) {
      y += rowHeight;
      steps.push({
        seq: seq,
        kind,
        from,
        to,
        label,
        detail: { registers: REGISTERS.replace('EIP=77f761ed', `EIP=${(0x77f761e8 + steps.length).toString(16)}`), ...(extra?.detail ?? {}) },
        ...(extra?.status ? { status: extra.status } : {}),
        ...(extra?.syscallId !== undefined ? { syscallId: extra.syscallId } : {}),
        ...(extra?.callId !== undefined ? { callId: extra.callId } : {}),
        index: steps.length,
        y: y - rowHeight / 2,
        x1: x.get(from)!,
        x2: x.get(to)!,
      });
      seq += 7;
    }
    y += rowHeight / 2;
    bands.push({
      syscallId,
      name: 'NtReadFile',
      entry: 'sysenter',
      previousMode: 'UserMode',
      status: failed ? { code: 0xc0000008, name: 'STATUS_INVALID_HANDLE', failed: true } : { code: 0, name: 'STATUS_SUCCESS', failed: false },
      parentId: null,
      firstSeq,
      lastSeq: seq - 7,
      y0,
      y1: y,
    });
    y += rowHeight / 2;
  }
  const width = left * 2 + laneWidth * lanes.length;
  return {
    title: options.title ?? `NtReadFile of ${fileName}`,
    width,
    height: y + rowHeight,
    headerHeight,
    rowHeight,
    lanes,
    rings: [
      { ring: 3, label: 'ring 3 (user mode)', x0: left, x1: left + laneWidth * 3 },
      { ring: 0, label: 'ring 0 (kernel mode)', x0: left + laneWidth * 3, x1: left + laneWidth * 6 },
    ],
    steps,
    bands,
    findings: [],
  };
}
