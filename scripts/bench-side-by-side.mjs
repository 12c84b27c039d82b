// Side by side in one run: two built checkouts of ntflow (each with dist/ from 'npm run build'),
// alternating, 3 rounds on the 2 M loop; then the whole record command at three sizes, 10 M state
// --at and the OSR scenario's bytes. Usage: node scripts/bench-side-by-side.mjs BEFORE_DIR NOW_DIR
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
const [before, now] = process.argv.slice(2);
if (!before || !now) {
  console.error('usage: node scripts/bench-side-by-side.mjs BEFORE_DIR NOW_DIR (two checkouts of ntflow, each built with npm run build)');
  process.exit(1);
}
const builds = { before, now };
const mods = {};
for (const [k, root] of Object.entries(builds)) mods[k] = { R: await import(`${root}/dist/bench/record.js`), A: await import(`${root}/dist/bench/analyze.js`), root };
const out = { before: [], now: [] };
for (let round = 0; round < 3; round++) {
  for (const k of ['before', 'now']) {
    const { R, A } = mods[k];
    const rec = R.benchRecord(500_000);
    const rep = A.benchReplay(rec.trace);
    const row = { recordPerSecond: rec.recordPerSecond, recordSeconds: rec.recordSeconds, rawPerSecond: rec.rawPerSecond, ratio: rec.ratio, bytesPerInstruction: rec.bytesPerInstruction, runsBytes: rec.runsBytesPerInstruction, codeBytes: rec.codeBytesPerInstruction, replayPerSecond: rep.perSecond, replaySeconds: rep.seconds };
    if (round === 0) row.cliView = R.benchCliView(rec.trace);
    out[k].push(row);
    console.log(k, JSON.stringify(row));
    rmSync(dirname(rec.trace), { recursive: true, force: true });
  }
}
const LOOP = (n) => `; ntflow: user\nstart:\n    mov ecx, ${n}\nl:\n    add eax, ecx\n    xor edx, eax\n    dec ecx\n    jnz l\n    xor eax, eax\n    ret\n`;
const dir = mkdtempSync(join(tmpdir(), 'cmp2-'));
const whole = (root, n) => {
  const p = join(dir, `l${n}.asm`); writeFileSync(p, LOOP(n));
  const trace = join(dir, `l${n}-${Math.random()}.db`);
  const t0 = process.hrtime.bigint();
  const r = spawnSync(process.execPath, [join(root, 'bin', 'ntflow'), 'record', p, '-o', trace], { encoding: 'utf8' });
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.status !== 0) throw new Error(r.stderr);
  rmSync(trace, { force: true });
  return s;
};
for (let round = 0; round < 2; round++) {
  for (const k of ['before', 'now']) {
    const root = mods[k].root;
    const floor = whole(root, 1), small = whole(root, 500_000), large = whole(root, 5_000_000);
    console.log(k, 'scaling', JSON.stringify({ floor, small, large, marginal: (20_000_000 - 2_000_000) / (large - small) }));
  }
}
for (const k of ['before', 'now']) {
  const { R, A } = mods[k];
  const big = R.benchRecord(2_500_000);
  const st = A.benchState(big.trace);
  console.log(k, 'state10M', JSON.stringify({ instructions: big.instructions, recordPerSecond: big.recordPerSecond, bytesPerInstruction: big.bytesPerInstruction, medianMs: st.medianMs, maxMs: st.maxMs }));
  rmSync(dirname(big.trace), { recursive: true, force: true });
  console.log(k, 'osr', JSON.stringify(R.benchOsrBytes()));
}
rmSync(dir, { recursive: true, force: true });
