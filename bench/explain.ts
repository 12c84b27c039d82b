// Findings figures on a large trace: a guest program that spends ~10 M instructions in a loop and
// makes a failing NtReadFile every few thousand instructions (a kernel-address buffer, then and
// again a closed handle). Measured: building the findings (part of replay), and `ntflow explain`
// answering — the whole session, and one call — from the file.
import Database from 'better-sqlite3';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildFindings, ensureProjections, explainSession, formatExplained } from '../analyzer/index.js';
import { record } from '../recorder/index.js';

export interface ExplainFigures {
  instructions: number;
  events: number;
  syscalls: number;
  findings: number;
  /** Building the findings rows from the replayed trace (one session). */
  buildMs: number;
  /** explain of the whole session: read, evidence, text. */
  explainAllMs: number;
  /** explain --syscall of one failed call in the middle. */
  explainOneMs: number;
  trace: string;
}

const PROGRAM = (rounds: number, spin: number) => `; ntflow: user
; ntflow-file: \\??\\C:\\bench.txt = "bench"
; ${rounds} rounds of a ${spin}-iteration loop, each ending in a failing NtReadFile: a kernel buffer,
; or (every 8th round) a handle closed before.
start:
    push 0
    push 0
    push 0x20
    push 1
    push 1
    push 0
    push 0
    push iosb
    push objectAttributes
    push 0x80100000
    push fileHandle
    call ntdll!NtCreateFile
    mov esi, ${rounds}
round:
    mov ecx, ${spin}
spin:
    add eax, ecx
    xor edx, eax
    dec ecx
    jnz spin
    mov ebx, [fileHandle]
    test esi, 7
    jnz .read
    mov ebx, 0x7F0                  ; never opened
.read:
    push 0
    push 0
    push 64
    push 0x80500000                 ; a kernel address: ProbeForWrite fails
    push iosb
    push 0
    push 0
    push 0
    push ebx
    call ntdll!NtReadFile
    dec esi
    jnz round
    xor eax, eax
    ret

align 4
fileHandle:       dd 0
iosb:             dd 0, 0
objectAttributes: dd 24, 0, fileName, 0x40, 0, 0
fileName:         dw fileNameEnd - fileNameText, fileNameEnd - fileNameText
                  dd fileNameText
fileNameText:     dw '\\', '?', '?', '\\', 'C', ':', '\\', 'b', 'e', 'n', 'c', 'h', '.', 't', 'x', 't'
fileNameEnd:
`;

const ms = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e6;

export async function benchExplain(instructions = 10_000_000, rounds = 2000): Promise<ExplainFigures> {
  const dir = mkdtempSync(join(tmpdir(), 'ntflow-bench-explain-'));
  const trace = join(dir, 'explain.db');
  const spin = Math.max(1, Math.floor((instructions / rounds - 120) / 4));
  const summary = await record({ program: { fileName: 'explain-bench.asm', source: PROGRAM(rounds, spin) } }, { output: trace, maxInstructions: instructions * 2 });
  ensureProjections(trace);
  const db = new Database(trace);
  try {
    const id = summary.sessionId;
    let t0 = process.hrtime.bigint();
    const built = buildFindings(db, id);
    const buildMs = ms(t0);
    const middle = db.prepare("SELECT syscall_id FROM findings WHERE session_id = ? AND kind = 'failure-cause' ORDER BY id LIMIT 1 OFFSET ?").pluck().get(id, Math.floor(built.findings.length / 2)) as number;
    explainSession(db, id, { syscall: middle }); // warm the statements and the page cache
    t0 = process.hrtime.bigint();
    const text = formatExplained(explainSession(db, id));
    const explainAllMs = ms(t0);
    t0 = process.hrtime.bigint();
    formatExplained(explainSession(db, id, { syscall: middle }));
    const explainOneMs = ms(t0);
    const s = db.prepare('SELECT instructions, events FROM sessions WHERE id = ?').get(id) as { instructions: number; events: number };
    const syscalls = db.prepare('SELECT count(*) FROM syscalls WHERE session_id = ?').pluck().get(id) as number;
    if (text.length === 0) throw new Error('explain printed nothing');
    return { instructions: s.instructions, events: s.events, syscalls, findings: built.findings.length, buildMs, explainAllMs, explainOneMs, trace };
  } finally {
    db.close();
  }
}
