// A large session's pages in a real browser (issue I item 3): bench/c/readloop.exe (about a
// million instructions, 4,004 system calls) recorded and drawn with the real CLI (`ntflow record`,
// `ntflow flow`), by default and every call step by step (--query). Each page opens in Debian's
// Chromium, draws, says what it aggregated (the numbers the trace's syscalls table gives), shows
// the "×N more" row, and logs no console error. No timing is asserted: how long the page took to
// draw is printed as a comment (the figures are bench/viz.ts's). Screenshot:
// test-artifacts/large-session.png.
//   npx tsc -p tsconfig.json && npx tap dist/test/browser-large.test.js
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import t from 'tap';
import Database from 'better-sqlite3';
import type { Browser } from 'playwright-core';
import { repoPath } from './util/paths.js';
import { ntflow } from './util/cli.js';
import { haveChromium, launchChromium, watchPage } from './util/browser.js';

const VIEWPORT = { width: 1600, height: 1200 };

if (haveChromium(t)) {
  const dir = mkdtempSync(join(tmpdir(), 'ntflow-browser-large-'));
  const trace = join(dir, 'readloop.db');
  let browser: Browser;
  let counts: { calls: number; reads: number; firstRead: number; lastRead: number; failed: number };

  t.before(async () => {
    const rec = await ntflow(['record', repoPath('bench', 'c', 'readloop.exe'), '-o', trace]);
    if (rec.code !== 0) throw new Error(`ntflow record readloop.exe failed: ${rec.stderr}`);
    const db = new Database(trace, { readonly: true });
    counts = db
      .prepare(
        `SELECT count(*) AS calls, sum(name = 'NtReadFile') AS reads, min(CASE WHEN name = 'NtReadFile' THEN id END) AS firstRead,
                max(CASE WHEN name = 'NtReadFile' THEN id END) AS lastRead, sum(status_name IS NOT NULL AND status_name <> 'STATUS_SUCCESS') AS failed
         FROM syscalls WHERE session_id = 1`,
      )
      .get() as typeof counts;
    db.close();
    browser = await launchChromium();
  });
  t.teardown(async () => {
    await browser?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  for (const [name, args] of [
    ['one row per call', [] as string[]],
    ['every call step by step', ['--query', 'SELECT id FROM syscalls']],
  ] as const) {
    t.test(`readloop.exe, ${name}: the page opens, draws, and says what it aggregated`, async (t) => {
      t.equal(counts.failed, 0, 'the trace: no call failed');
      t.equal(counts.lastRead - counts.firstRead + 1, counts.reads, 'the trace: the reads are consecutive calls');
      const page = join(dir, `readloop-${args.length ? 'steps' : 'rows'}.html`);
      const flow = await ntflow(['flow', trace, ...args, '-o', page]);
      t.equal(flow.code, 0, `ntflow flow ${args.join(' ')} exits 0 ${flow.stderr}`);

      const tab = await browser.newPage({ viewport: VIEWPORT });
      const watch = watchPage(tab);
      const started = performance.now();
      await tab.goto(pathToFileURL(page).href);
      await tab.waitForSelector('html[data-ntflow-ready="true"]', { timeout: 60_000 });
      t.comment(`${name}: drawn ${(performance.now() - started).toFixed(0)} ms after navigation`);
      t.equal(await tab.locator('section.ntflow-diagram[data-ready="true"] svg.ntflow-svg').count(), 1, 'the diagram is drawn');

      // The trace's numbers: the reads' first and last are drawn, the ones between are one row.
      const folded = counts.reads - 2;
      const notice = (await tab.locator('.ntflow-notice').textContent()) ?? '';
      t.match(notice, `Aggregated: ${folded.toLocaleString('en')} of ${counts.calls.toLocaleString('en')} system calls drawn as 1 row`);
      t.match(notice, `ntflow flow ${trace} --syscall ID`);
      const row = `×${folded.toLocaleString('en')} more NtReadFile calls like #${counts.firstRead} → STATUS_SUCCESS (ids ${(counts.firstRead + 1).toLocaleString('en')}–${(counts.lastRead - 1).toLocaleString('en')})`;
      t.equal(await tab.locator('g.step text.label', { hasText: `×${folded.toLocaleString('en')} more NtReadFile` }).count(), 1, 'one aggregate row');
      const payload = JSON.parse((await tab.locator('#ntflow-data-0').textContent()) ?? '{}') as { layout: { steps: { label: string }[]; notice?: string[] } };
      t.equal(payload.layout.steps.filter((s) => s.label === row).length, 1, `the row says: ${row}`);
      t.equal(await tab.locator('g.band').count(), counts.calls - folded, 'a band for each call still drawn');
      const elements = await tab.locator('svg.ntflow-svg *').count();
      t.ok(elements < 5000, `a page a browser can handle: ${elements} SVG elements`);
      t.comment(`${name}: ${elements} SVG elements`);
      t.same(watch.errors, [], 'no console error');

      if (!args.length) {
        const out = repoPath('test-artifacts');
        mkdirSync(out, { recursive: true });
        await tab.screenshot({ path: join(out, 'large-session.png'), fullPage: true });
        t.pass(`saved ${join(out, 'large-session.png')}`);
      }
      await tab.close();
    });
  }
}
