// Development aid: print generated cases as JSON lines (one per line) for feeding the oracle or
// `ntflow exec --jsonl`. Usage: node dist/test/gen/dump.js SEED COUNT [family,...|-] [--meta] [--max=N]
import { generateCases } from './cases.js';

const [seedText = '1', countText = '10', famText, ...rest] = process.argv.slice(2);
const only = famText && famText !== '-' ? famText.split(',') : undefined;
const meta = rest.includes('--meta');
const max = Number(rest.find((a) => a.startsWith('--max='))?.slice(6) ?? 6);
for (const g of generateCases(Number(seedText) >>> 0, Number(countText), only, max)) {
  process.stdout.write(JSON.stringify(meta ? { ...g.case, _mask: g.flagsMask, _faultMasks: g.faultMasks, _text: g.text } : g.case) + '\n');
}
