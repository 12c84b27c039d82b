// The assembler against nasm: the corpus (test/asm/corpus.asm) must give nasm's bytes exactly,
// as a whole and line by line, and data directives / times / align must lay out as nasm does.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { assemble } from '../core/asm/index.js';
import { haveOracle } from './util/oracle.js';
import { repoPath } from './util/paths.js';

/** haveOracle with tap's Test (whose skip/fail take more arguments than the helper declares). */
const nasmHere = (t: Test) =>
  haveOracle({ skip: (m) => void t.skip(m ?? ''), fail: (m) => void t.fail(m ?? '') }, 'nasm');

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');

// MASM's `ptr` (dword ptr [eax]) is accepted by ntflow, not by nasm: nasm gets the source without it.
const forNasm = (source: string) => source.replace(/\bptr\b/gi, '');

const work = mkdtempSync(join(tmpdir(), 'ntflow-asm-'));
t.teardown(() => rmSync(work, { recursive: true, force: true }));
let runs = 0;

/** nasm -f bin on the source; the bytes, or the error text. */
function nasm(source: string): { bytes: Uint8Array } | { error: string } {
  const input = join(work, `in${runs}.asm`);
  const output = join(work, `out${runs++}.bin`);
  writeFileSync(input, forNasm(source));
  const run = spawnSync('nasm', ['-f', 'bin', '-w-all', input, '-o', output], { encoding: 'utf8' });
  if (run.status !== 0) return { error: run.stderr.trim() };
  return { bytes: new Uint8Array(readFileSync(output)) };
}

const corpus = readFileSync(repoPath('test', 'asm', 'corpus.asm'), 'utf8');

t.test('the corpus is large and one instruction per line', async (t) => {
  const { listing } = assemble(corpus, { fileName: 'corpus.asm' });
  const emitting = listing.filter((l) => l.length > 0);
  t.ok(emitting.length >= 300, `${emitting.length} lines emit bytes`);
});

t.test('corpus: ntflow and nasm -f bin give the same bytes', async (t) => {
  if (!nasmHere(t)) return;
  const ours = assemble(corpus, { fileName: 'corpus.asm' });
  const theirs = nasm(corpus);
  if ('error' in theirs) return t.fail(`nasm rejected the corpus: ${theirs.error}`);
  t.equal(ours.bytes.length, theirs.bytes.length, 'same length');
  const firstDifference = ours.bytes.findIndex((b, i) => b !== theirs.bytes[i]);
  if (firstDifference >= 0) {
    const line = ours.listing.find((l) => firstDifference >= l.address - ours.origin && firstDifference < l.address - ours.origin + l.length)!;
    const at = line.address - ours.origin;
    t.fail(
      `first difference at offset ${firstDifference}, corpus.asm:${line.line} '${line.text.trim()}': ` +
        `ntflow ${hex(ours.bytes.subarray(at, at + line.length))}, nasm ${hex(theirs.bytes.subarray(at, at + line.length))}`,
    );
  } else t.pass(`${ours.bytes.length} bytes identical`);
});

t.test('corpus line by line: each line alone at its own address', async (t) => {
  if (!nasmHere(t)) return;
  const lines = corpus.split('\n');
  // The equ lines give the constants that other lines use; labels are not available alone.
  const constants = lines.filter((l) => /^\w+\s+equ\s/i.test(l)).join('\n');
  const { listing } = assemble(corpus, { fileName: 'corpus.asm' });
  const differences: string[] = [];
  let compared = 0;
  let needContext = 0;
  for (const entry of listing) {
    if (entry.length === 0 || /^\s*(align|times)\b/i.test(entry.text)) continue;
    const source = `bits 32\norg ${entry.address}\n${constants}\n${entry.text}\n`;
    const theirs = nasm(source);
    if ('error' in theirs) {
      needContext++; // refers to a label of the corpus
      continue;
    }
    compared++;
    let ours: string;
    try {
      ours = hex(assemble(source).bytes);
    } catch (error) {
      ours = `error: ${(error as Error).message}`;
    }
    if (ours !== hex(theirs.bytes)) differences.push(`corpus.asm:${entry.line} '${entry.text.trim()}': ntflow ${ours}, nasm ${hex(theirs.bytes)}`);
  }
  t.ok(compared >= 300, `${compared} lines compared alone (${needContext} need the corpus's labels)`);
  t.same(differences.slice(0, 10), [], `${differences.length} lines differ`);
});

const layoutCases: { name: string; source: string; bytes: string }[] = [
  { name: 'db numbers in every base', source: "db 0x12, 34, 0b101, 101b, 17q, 0B7h, -1, 'A'", bytes: '12220505 0fb7ff41' },
  { name: 'db strings of each quote', source: 'db \'ab\', "cd", `e\\n\\x41`, 0', bytes: '61626364 650a4100' },
  { name: 'dw pads a string to whole words', source: "dw 'abc', 1", bytes: '61626300 0100' },
  { name: 'dd and dq are little-endian', source: 'dd 0x12345678, -2\ndq 0x0102030405060708', bytes: '78563412 feffffff 08070605 04030201' },
  { name: 'times repeats data and instructions', source: 'times 3 db 0xCC\ntimes 2 push eax', bytes: 'cccccc 5050' },
  { name: 'times counts with expressions', source: 'times (8 - 2) / 2 dw 1', bytes: '0100 0100 0100' },
  { name: 'align pads with nop from the section start', source: 'db 1\nalign 4\ndb 2\nalign 8\ndb 3', bytes: '01909090 02909090 03' },
  { name: '$ and $$ with an origin', source: 'org 0x100\nnop\ndd $, $$, $ - $$', bytes: '90 01010000 00010000 01000000' },
  { name: 'equ, forward labels and local labels', source: 'N equ 4\nstart: jmp .x\n.x: dd N * 2, start.x, end\nend:', bytes: 'eb00 08000000 02000000 0e000000' },
];

for (const example of layoutCases) {
  t.test(`layout: ${example.name}`, async (t) => {
    const source = `bits 32\n${example.source}\n`;
    const ours = hex(assemble(source).bytes);
    t.equal(ours, example.bytes.replace(/ /g, ''), 'the expected bytes');
    if (!nasmHere(t)) return;
    const theirs = nasm(source);
    t.equal(ours, 'error' in theirs ? theirs.error : hex(theirs.bytes), 'the same as nasm');
  });
}

t.test('branches settle to short when they reach and near when they do not', async (t) => {
  const source = 'bits 32\ntop: jz far_away\njmp top\ntimes 130 nop\nfar_away: jmp top\n';
  const ours = assemble(source);
  t.equal(hex(ours.bytes.subarray(0, 8)), '0f8484000000ebf8', 'jz near forward, jmp short back');
  t.equal(hex(ours.bytes.subarray(ours.bytes.length - 5)), 'e971ffffff', 'jmp near back over 130 bytes');
  if (!nasmHere(t)) return;
  const theirs = nasm(source);
  t.equal(hex(ours.bytes), 'error' in theirs ? theirs.error : hex(theirs.bytes), 'the same as nasm');
});
