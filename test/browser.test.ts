// The generated pages in a real browser: Debian's Chromium driven by playwright-core (never a
// downloaded browser; skipped with a reason when /usr/bin/chromium is missing, failed when CI=true).
// Each page opens from a file:// URL with no console error and no request but itself; the lanes and
// labels of the seed path are there; clicks collapse and expand; hovering shows the registers; a
// hostile file name is text and runs nothing; a 1,000-syscall session is interactive in ≤ 2 s.
// A screenshot of the NtReadFile diagram goes to test-artifacts/ntreadfile.png.
//   npx tsc -p tsconfig.json && npx tap dist/test/browser.test.js
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import t from 'tap';
import Database from 'better-sqlite3';
import type { Browser, Page } from 'playwright-core';
import { record } from '../recorder/index.js';
import { replayFile } from '../analyzer/index.js';
import { sequenceInput } from '../viz/data.js';
import { layoutSequence } from '../viz/layout.js';
import { renderSequenceHtml } from '../viz/html.js';
import { COMPARISONS, comparisonPage, runDemoPage } from '../bin/demo-page.js';
import { SCENARIOS } from '../core/guest/scenarios.js';
import { repoPath } from './util/paths.js';
import {
  HOSTILE_FILE,
  SCRIPT_BREAKER,
  foreignRequests,
  haveChromium,
  hostileProgram,
  launchChromium,
  manyReadsProgram,
  sequenceFixture,
  watchPage,
  type PageWatch,
} from './util/browser.js';

const VIEWPORT = { width: 1600, height: 1200 };

if (haveChromium(t)) {
  const dir = mkdtempSync(join(tmpdir(), 'ntflow-browser-'));
  const traces = join(dir, 'traces');
  let browser: Browser;
  const pages: Record<string, string> = {};

  t.before(async () => {
    await runDemoPage({ out: traces, log: () => {} });
    const db = new Database(join(traces, 'demo.db'), { readonly: true });
    try {
      // The NtReadFile call of user-nt-readfile on its own (the screenshot).
      const session = db.prepare("SELECT id FROM sessions WHERE name = 'user-nt-readfile'").pluck().get() as number;
      const call = db.prepare("SELECT id FROM syscalls WHERE session_id = ? AND name = 'NtReadFile'").pluck().get(session) as number;
      pages.ntreadfile = join(dir, 'ntreadfile.html');
      writeFileSync(pages.ntreadfile, renderSequenceHtml(layoutSequence(sequenceInput(db, session, { syscallIds: [call] }))));
    } finally {
      db.close();
    }

    // A program named <img src=x onerror=alert(1)>.asm that opens a file of that name.
    const hostileDb = join(dir, 'hostile.db');
    await record({ program: hostileProgram() }, { output: hostileDb });
    replayFile(hostileDb);
    const hdb = new Database(hostileDb, { readonly: true });
    pages.hostile = join(dir, 'hostile.html');
    writeFileSync(pages.hostile, renderSequenceHtml(layoutSequence(sequenceInput(hdb, 1))));
    hdb.close();

    // A hand-made layout with </script><script>alert(1)</script> in labels and the title.
    pages.breaker = join(dir, 'breaker.html');
    writeFileSync(pages.breaker, renderSequenceHtml(sequenceFixture({ fileName: SCRIPT_BREAKER, title: `t ${SCRIPT_BREAKER}` })));

    // A 1,000-syscall session: 997 reads + NtCreateFile, NtClose, NtTerminateProcess.
    const bigDb = join(dir, 'big.db');
    await record({ program: manyReadsProgram(997) }, { output: bigDb });
    replayFile(bigDb);
    const bdb = new Database(bigDb, { readonly: true });
    const ids = bdb.prepare('SELECT id FROM syscalls WHERE session_id = 1 ORDER BY id').pluck().all() as number[];
    if (ids.length !== 1000) throw new Error(`the big session has ${ids.length} system calls, not 1000`);
    pages.bigRows = join(dir, 'big-rows.html'); // the default: one summary row per call
    writeFileSync(pages.bigRows, renderSequenceHtml(layoutSequence(sequenceInput(bdb, 1))));
    pages.bigFull = join(dir, 'big-full.html'); // every call's instruction-level path, one band each
    writeFileSync(pages.bigFull, renderSequenceHtml(layoutSequence(sequenceInput(bdb, 1, { syscallIds: ids, registerSteps: 0 }))));
    bdb.close();

    browser = await launchChromium();
  });
  t.teardown(async () => {
    await browser?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Opens a page from its file URL and waits until every diagram on it is drawn. */
  async function open(file: string): Promise<{ page: Page; watch: PageWatch; url: string; ms: number }> {
    const page = await browser.newPage({ viewport: VIEWPORT });
    const watch = watchPage(page);
    const url = pathToFileURL(file).href;
    const started = performance.now();
    await page.goto(url);
    await page.waitForSelector('html[data-ntflow-ready="true"]', { timeout: 10_000 });
    return { page, watch, url, ms: performance.now() - started };
  }

  const stepWith = (page: Page, text: string) => page.locator('g.step', { has: page.locator('text.label', { hasText: text }) });

  t.test('every generated page opens offline: drawn, no console error, no request but itself', async (t) => {
    const files = [...readdirSync(traces).filter((f) => f.endsWith('.html')).map((f) => join(traces, f)), pages.ntreadfile, pages.hostile, pages.breaker];
    t.equal(files.length, 1 + 3 * SCENARIOS.length + COMPARISONS.length + 3, 'the index, three pages per scenario, a page per comparison, and the three made here');
    for (const file of files) {
      const { page, watch, url } = await open(file);
      const diagrams = await page.locator('section.ntflow-diagram').count();
      const drawn = await page.locator('section.ntflow-diagram[data-ready="true"] svg.ntflow-svg').count();
      const name = file.slice(dir.length + 1);
      t.ok(diagrams > 0 || name.endsWith('index.html'), `${name}: has diagrams`);
      t.equal(drawn, diagrams, `${name}: every diagram drawn`);
      t.same(watch.errors, [], `${name}: no console error`);
      t.same(foreignRequests(watch, url), [], `${name}: no request but the file itself`);
      t.same(watch.dialogs, [], `${name}: no dialog`);
      await page.close();
    }
  });

  t.test("the index's Comparisons: each link opens its comparison, both diagrams drawn", async (t) => {
    const { page, watch } = await open(join(traces, 'index.html'));
    t.equal(await page.locator('#comparisons .part').count(), COMPARISONS.length);
    for (const c of COMPARISONS) {
      const link = page.locator(`#comparisons a[href="${comparisonPage(c)}"]`);
      t.equal(await link.count(), 1, `a link to ${comparisonPage(c)}`);
      await link.click();
      await page.waitForSelector('html[data-ntflow-ready="true"]', { timeout: 10_000 });
      t.match(page.url(), new RegExp(`/${comparisonPage(c).replace(/\./g, '\\.')}$`), 'it opened');
      t.equal(await page.locator('section.ntflow-diagram[data-ready="true"] svg.ntflow-svg').count(), 2, `${c.a} vs ${c.b}: both diagrams drawn`);
      t.match(await page.locator('h1').textContent(), `${c.a} vs ${c.b}`);
      await page.goBack();
      await page.waitForSelector('html[data-ntflow-ready="true"]', { timeout: 10_000 });
    }
    t.same(watch.errors, [], 'no console error');
    await page.close();
  });

  t.test('user-nt-readfile: the lanes by ring and the labels of the seed path', async (t) => {
    const { page } = await open(join(traces, 'user-nt-readfile.html'));
    const lanes = await page.locator('g.lane-head').evaluateAll((gs) => gs.map((g) => [g.getAttribute('data-lane'), g.querySelector('title')?.textContent]));
    t.same(
      lanes.map(([id]) => id),
      ['program', 'ntdll', 'SharedUserData', 'nt-entry', 'nt-service', 'nt-exit', 'nt'],
    );
    t.match(lanes[0][1], /user-nt-readfile\.exe \(ring 3\)/);
    t.match(lanes[3][1], /KiFastCallEntry \/ KiSystemService \(ring 0\)/);
    t.same(await page.locator('g.ring-head text.ring-label').allTextContents(), ['ring 3 (user mode)', 'ring 0 (kernel mode)']);
    const labels = (await page.locator('g.step text.label').allTextContents()).join('\n');
    for (const label of [
      'call ntdll!NtReadFile',
      'call SharedUserData!SystemCallStub · EAX = 0B7h',
      'sysenter: MSR[176] = 8053A270 → KiFastCallEntry',
      'jmp nt!KiSystemService+0x5c',
      'SSDT[0xB7] → nt!NtReadFile',
      'PreviousMode = UserMode',
      'NtReadFile: STATUS_SUCCESS',
      'APC check: user APC pending = no',
      'sysexit → SharedUserData!SystemCallStub+0x4',
    ]) {
      t.ok(labels.includes(label), `label '${label}'`);
    }
    t.ok(await page.locator('g.step.kind-sysenter.ring-transition').count(), 'SYSENTER drawn as a ring transition');
    t.match((await page.locator('g.band[data-syscall="2"] text.band-label').textContent()) ?? '', /#2 · NtReadFile · sysenter · UserMode · STATUS_SUCCESS/);
    const legend = (await page.locator('.ntflow-legend').textContent()) ?? '';
    for (const item of ['ring 3 (user mode)', 'ring 0 (kernel mode)', 'call', 'return', 'SYSENTER', 'SYSEXIT', 'INT', 'IRETD', 'failing NTSTATUS']) t.match(legend, item, `legend: ${item}`);
    await page.close();
  });

  t.test('clicks collapse and expand a system call band and a function body', async (t) => {
    const { page } = await open(join(traces, 'user-nt-readfile.html'));
    const steps = () => page.locator('g.step').count();
    const all = await steps();
    const band = page.locator('g.band[data-syscall="1"]');
    await band.locator('rect.band-head').click();
    t.equal(await band.getAttribute('aria-expanded'), 'false', 'band #1 collapsed');
    t.match((await band.locator('text.band-label').textContent()) ?? '', /^▸ #1 · NtCreateFile .*\(\d+ steps\)$/);
    const collapsed = await steps();
    t.ok(collapsed < all, `fewer steps drawn (${all} → ${collapsed})`);
    await band.locator('rect.band-head').click();
    t.equal(await band.getAttribute('aria-expanded'), 'true', 'clicking the collapsed band expands it');
    t.equal(await steps(), all);

    const call = stepWith(page, 'call ntdll!NtCreateFile').first();
    t.equal(await call.getAttribute('aria-expanded'), 'true');
    await call.locator('rect.hit').click();
    t.equal(await call.getAttribute('aria-expanded'), 'false', 'the call of ntdll!NtCreateFile folded its body');
    t.match((await call.locator('text.label').textContent()) ?? '', /▸ \d+ steps/);
    t.equal(await stepWith(page, 'SSDT[0x25] → nt!NtCreateFile').count(), 0, 'the dispatch inside is hidden');
    await call.locator('rect.hit').click();
    t.equal(await call.getAttribute('aria-expanded'), 'true', 'clicking the collapsed function expands it');
    t.equal(await stepWith(page, 'SSDT[0x25] → nt!NtCreateFile').count(), 1);
    t.equal(await steps(), all);
    await page.close();
  });

  t.test('hovering a step shows its tooltip with the registers; search highlights a symbol', async (t) => {
    const { page } = await open(join(traces, 'user-nt-readfile.html'));
    const tooltip = page.locator('.ntflow-tooltip');
    t.equal(await tooltip.isVisible(), false);
    await stepWith(page, 'sysenter: MSR[176]').first().locator('rect.hit').hover();
    t.equal(await tooltip.isVisible(), true, 'tooltip shown');
    const text = (await tooltip.textContent()) ?? '';
    t.match(text, /sysenter: MSR\[176\] = 8053A270 → KiFastCallEntry/);
    for (const reg of ['EAX', 'EDX', 'ESP', 'EIP', 'EFLAGS']) t.match(text, new RegExp(`${reg}[0-9A-F]{8}`), `register ${reg}`);
    t.match(text, /EAX00000025/, 'EAX holds NtCreateFile\'s service number');
    await page.mouse.move(2, 2);
    t.equal(await tooltip.isVisible(), false, 'and hidden again');

    await stepWith(page, 'PreviousMode = UserMode').nth(1).locator('rect.hit').hover();
    const args = (await tooltip.textContent()) ?? '';
    t.match(args, /FileHandle/, 'the service-enter note shows the arguments');

    await page.locator('input.ntflow-search').fill('NtReadFile');
    const matches = await page.locator('g.step.match').count();
    t.ok(matches >= 3, `${matches} steps match NtReadFile`);
    t.match((await page.locator('.ntflow-matches').textContent()) ?? '', new RegExp(`^${matches} matches`));
    await page.locator('input.ntflow-search').press('Enter');
    t.equal(await page.locator('g.step.current').count(), 1, 'Enter picks the first match');
    await page.locator('input.ntflow-search').fill('');
    t.equal(await page.locator('g.step.match').count(), 0);
    await page.close();
  });

  t.test('a failing NTSTATUS is drawn red', async (t) => {
    const { page } = await open(join(traces, 'kernel-nt-readfile.html'));
    const failed = page.locator('g.step.failed', { has: page.locator('text.label', { hasText: 'STATUS_INVALID_HANDLE' }) }).first();
    t.equal(await failed.count(), 1);
    t.equal(await failed.locator('text.label').evaluate((el) => (globalThis as unknown as { getComputedStyle(e: unknown): { fill: string } }).getComputedStyle(el).fill), 'rgb(198, 40, 40)');
    await page.close();
  });

  t.test('zoom and pan move the drawing', async (t) => {
    const { page } = await open(join(traces, 'user-nt-readfile.html'));
    const viewport = page.locator('svg.ntflow-svg > g.viewport');
    const before = await viewport.getAttribute('transform');
    const box = (await page.locator('svg.ntflow-svg').boundingBox())!;
    await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
    t.equal(before, 'translate(8,0) scale(1)', 'drawn at its own size (scale 1), not shrunk to the canvas');
    // The wheel scrolls the drawing (it is longer than the canvas); ctrl + wheel zooms.
    await page.mouse.wheel(0, 300);
    const changedFrom = (b: string | null) => `document.querySelector('svg.ntflow-svg > g.viewport').getAttribute('transform') !== ${JSON.stringify(b)}`;
    await page.waitForFunction(changedFrom(before));
    const scrolled = (await viewport.getAttribute('transform'))!;
    t.match(scrolled, /^translate\(8,-300\) scale\(1\)$/, 'the wheel scrolls down by its delta');
    await page.keyboard.down('Control');
    await page.mouse.wheel(0, -400);
    await page.keyboard.up('Control');
    await page.waitForFunction(changedFrom(scrolled));
    const zoomed = await viewport.getAttribute('transform');
    t.notMatch(zoomed, /scale\(1\)$/, `ctrl + wheel zooms (${zoomed})`);
    await page.mouse.down();
    await page.mouse.move(box.x + box.width / 2 - 120, box.y + box.height / 2 - 80, { steps: 4 });
    await page.mouse.up();
    t.not(await viewport.getAttribute('transform'), zoomed, 'a drag pans');
    await page.locator('button.ntflow-reset').click();
    await page.waitForTimeout(300);
    t.equal(await viewport.getAttribute('transform'), before, 'reset zoom goes back');
    await page.close();
  });

  t.test('flame chart and call graph: a click folds a function, hovering shows details', async (t) => {
    const flame = await open(join(traces, 'user-nt-readfile.flame.html'));
    const frames = () => flame.page.locator('g.frame').count();
    const all = await frames();
    const body = flame.page.locator('g.frame.has-body').first();
    await body.locator('rect').click({ position: { x: 2, y: 2 } });
    t.ok((await frames()) < all, 'descendants hidden');
    t.match((await body.getAttribute('class')) ?? '', /collapsed/);
    await body.locator('rect').click({ position: { x: 2, y: 2 } });
    t.equal(await frames(), all, 'and shown again');
    await body.locator('rect').hover({ position: { x: 2, y: 2 } });
    t.match((await flame.page.locator('.ntflow-tooltip').textContent()) ?? '', /module/);
    await flame.page.close();

    const graph = await open(join(traces, 'user-nt-readfile.graph.html'));
    t.ok((await graph.page.locator('g.node').count()) > 5, 'nodes');
    await graph.page.locator('g.node', { has: graph.page.locator('text', { hasText: 'SharedUserData!SystemCallStub' }) }).click();
    t.ok((await graph.page.locator('g.edge.dim').count()) > 0, 'a click on a node dims the other edges');
    await graph.page.close();
  });

  t.test('a hostile file name is text and runs nothing', async (t) => {
    for (const [file, text] of [
      [pages.hostile, HOSTILE_FILE],
      [pages.breaker, SCRIPT_BREAKER],
    ] as const) {
      const { page, watch, url } = await open(file);
      t.equal(await page.locator('img').count(), 0, 'no img element was created');
      t.equal(await page.locator('script').count(), 3, 'no script element was added');
      t.ok(((await page.locator('h1').textContent()) ?? '').includes(text), 'the title shows it as characters');
      const labels = await page.locator('g.step text.label, g.lane-head title').allTextContents();
      t.ok(
        labels.some((l) => l.includes(text)),
        'a label shows it as characters',
      );
      // Hover every step that carries it: the tooltip is text too. (The findings list beside the
      // diagram — where the missing file's name shows, as text — would cover steps panned under it.)
      await page.locator('.ntflow-findings').evaluateAll((els) => els.forEach((e) => ((e as unknown as { style: { display: string } }).style.display = 'none')));
      const carrying = page.locator('g.step', { has: page.locator('text.label', { hasText: text }) });
      for (let i = 0; i < Math.min(await carrying.count(), 5); i++) {
        await carrying.nth(i).locator('rect.hit').hover();
        t.equal(await page.locator('.ntflow-tooltip img').count(), 0);
      }
      await page.waitForTimeout(100);
      t.same(watch.dialogs, [], 'no alert');
      t.same(watch.errors, [], 'no console error (the CSP refused nothing, nothing tried to run)');
      t.same(foreignRequests(watch, url), [], 'no request for src=x');
      await page.close();
    }
  });

  t.test('a screenshot of the NtReadFile diagram (test-artifacts/ntreadfile.png)', async (t) => {
    const { page } = await open(pages.ntreadfile);
    const out = repoPath('test-artifacts');
    mkdirSync(out, { recursive: true });
    await page.screenshot({ path: join(out, 'ntreadfile.png'), fullPage: true });
    t.pass(`saved ${join(out, 'ntreadfile.png')}`);
    await page.close();
  });

  // How long it takes is printed, not asserted: a test must not depend on the machine's load.
  t.test('a 1,000-syscall session opens and is interactive in Chromium', async (t) => {
    for (const [name, file] of [
      ['one summary row per call', pages.bigRows],
      ['every call step by step, bands collapsed', pages.bigFull],
    ] as const) {
      // Twice: the first load also warms Chromium's caches.
      for (let run = 0; run < 2; run++) {
        const { page, watch, ms } = await open(file);
        const bands = await page.locator('g.band').count();
        t.equal(bands, 1000, `${name}: 1000 bands`);
        const clickStarted = performance.now();
        if (name.startsWith('every')) {
          const band = page.locator('g.band[data-syscall="2"]');
          t.equal(await band.getAttribute('aria-expanded'), 'false', 'starts collapsed');
          await band.locator('rect.band-head').click();
          t.equal(await band.getAttribute('aria-expanded'), 'true', 'one click expands it');
        } else {
          await stepWith(page, 'NtReadFile').first().locator('rect.hit').hover();
          t.equal(await page.locator('.ntflow-tooltip').isVisible(), true, 'hover shows a tooltip');
        }
        const interaction = performance.now() - clickStarted;
        t.same(watch.errors, [], `${name}: no console error`);
        t.comment(`${name}, run ${run + 1}: ready ${ms.toFixed(0)} ms, first interaction ${interaction.toFixed(0)} ms`);
        await page.close();
      }
    }
  });
}
