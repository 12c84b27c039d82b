// Side by side in one run: two built checkouts of ntflow (each with dist/ from 'npm run build'),
// alternating, 3 rounds on the 2 M loop; then the whole record command at three sizes, 10 M state
// --at and the OSR scenario's bytes. Usage: node scripts/bench-side-by-side.mjs BEFORE_DIR NOW_DIR
import { rmSync } from 'node:fs';
import { dirname } from 'node:path';
const [before, now] = process.argv.slice(2);
if (!before || !now) {
  console.error('usage: node scripts/bench-side-by-side.mjs BEFORE_DIR NOW_DIR (two checkouts of ntflow, each built with npm run build)');
  process.exit(1);
}
const builds = { before, now };
const mods = {};
for (const [k, root] of Object.entries(builds)) mods[k] = { R: await import(`${root}/dist/bench/record.js`), A: await import(`${root}/dist/bench/analyze.js`), root };
for (let round = 0; round < 3; round++) {
  for (const k of ['before', 'now']) {
    const { R, A } = mods[k];
    const rec = R.benchRecord(500_000);
    const rep = A.benchReplay(rec.trace);
    const row = { recordPerSecond: rec.recordPerSecond, recordSeconds: rec.recordSeconds, rawPerSecond: rec.rawPerSecond, ratio: rec.ratio, bytesPerInstruction: rec.bytesPerInstruction, runsBytes: rec.runsBytesPerInstruction, codeBytes: rec.codeBytesPerInstruction, replayPerSecond: rep.perSecond, replaySeconds: rep.seconds };
    if (round === 0) row.cliView = R.benchCliView(rec.trace);
    console.log(k, JSON.stringify(row));
    rmSync(dirname(rec.trace), { recursive: true, force: true });
  }
}
// The whole command at three sizes, each checkout's own bin/ntflow, measured by the newer bench.
for (let round = 0; round < 2; round++) {
  for (const k of ['before', 'now']) console.log(k, 'scaling', JSON.stringify(mods.now.R.benchRecordScaling(500_000, 5_000_000, mods[k].root)));
}
for (const k of ['before', 'now']) {
  const { R, A } = mods[k];
  const big = R.benchRecord(2_500_000);
  const st = A.benchState(big.trace);
  console.log(k, 'state10M', JSON.stringify({ instructions: big.instructions, recordPerSecond: big.recordPerSecond, bytesPerInstruction: big.bytesPerInstruction, medianMs: st.medianMs, maxMs: st.maxMs }));
  rmSync(dirname(big.trace), { recursive: true, force: true });
  console.log(k, 'osr', JSON.stringify(R.benchOsrBytes()));
}
