// The findings on the HTML page, in a real browser (Debian's Chromium through playwright-core; a
// visible skip without it, a failure when CI=true): the list beside the diagram has one item per
// finding of the session, in order; "next failure" (its button, the n key) goes to the first
// failed call's red note, then the second, expanding what hides them; a collapsed failed band is
// still marked; clicking a finding brings its note into view; a clean session has no red note, no
// failed mark and nothing to go to; ssdt-hook's hook note is amber.
//   npx tsc -p tsconfig.json && npx tap dist/test/browser-findings.test.js
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import t from 'tap';
import Database from 'better-sqlite3';
import type { Browser, Page } from 'playwright-core';
import { record } from '../recorder/index.js';
import { readFindings, replayFile, type FindingRow } from '../analyzer/index.js';
import { layoutSequence, renderSequenceHtml, sequenceInput } from '../viz/index.js';
import { foreignRequests, haveChromium, launchChromium, watchPage } from './util/browser.js';

const VIEWPORT = { width: 1600, height: 1000 };

if (haveChromium(t)) {
  const dir = mkdtempSync(join(tmpdir(), 'ntflow-browser-findings-'));
  let browser: Browser;
  const pages: Record<string, string> = {};
  const findings: Record<string, FindingRow[]> = {};

  t.before(async () => {
    for (const scenario of ['osr-log-user-handle', 'user-nt-readfile', 'ssdt-hook']) {
      const file = join(dir, `${scenario}.db`);
      const { sessionId } = await record({ scenario }, { output: file });
      replayFile(file);
      const db = new Database(file, { readonly: true });
      try {
        findings[scenario] = readFindings(db, sessionId);
        pages[scenario] = join(dir, `${scenario}.html`);
        writeFileSync(pages[scenario], renderSequenceHtml(layoutSequence(sequenceInput(db, sessionId, { registerSteps: 0 }))));
      } finally {
        db.close();
      }
    }
    browser = await launchChromium();
  });
  t.teardown(async () => {
    await browser?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Opens a scenario's page; `done` checks it logged no error and asked for nothing, and closes it. */
  async function open(scenario: string): Promise<{ page: Page; done: (t: { same(a: unknown, b: unknown, m: string): unknown }) => Promise<void> }> {
    const page = await browser.newPage({ viewport: VIEWPORT });
    const watch = watchPage(page);
    const url = pathToFileURL(pages[scenario]).href;
    await page.goto(url);
    await page.waitForSelector('html[data-ntflow-ready="true"]', { timeout: 10_000 });
    const done = async (t: { same(a: unknown, b: unknown, m: string): unknown }) => {
      t.same(watch.errors, [], `${scenario}: no console error`);
      t.same(foreignRequests(watch, url), [], `${scenario}: no request but the page`);
      await page.close();
    };
    return { page, done };
  }

  /** getComputedStyle, typed (the project compiles without the DOM library); for page.evaluate only. */
  type Styled = { getComputedStyle(e: unknown): { fill: string; stroke: string } };

  /** What is in the spotlight: the finding id of a note, or 'band N'. */
  const spotlight = (page: Page) =>
    page.locator('svg .spotlight').evaluateAll((els) => els.map((e) => (e.getAttribute('data-finding') ? `finding ${e.getAttribute('data-finding')}` : `band ${e.getAttribute('data-syscall')}`)));

  /** Waits until the note of finding `id` is drawn inside the canvas's visible area (the pan is animated). */
  async function waitInView(page: Page, id: number): Promise<void> {
    await page.waitForFunction(
      (id) => {
        type Box = { top: number; bottom: number; left: number; right: number };
        const doc = (globalThis as unknown as { document: { querySelector(s: string): { getBoundingClientRect(): Box } | null } }).document;
        const note = doc.querySelector(`g.step[data-finding="${id}"] rect.finding-box`);
        const canvas = doc.querySelector('.ntflow-canvas');
        if (!note || !canvas) return false;
        const n = note.getBoundingClientRect();
        const c = canvas.getBoundingClientRect();
        return n.top >= c.top && n.bottom <= c.bottom && n.left >= c.left && n.left < c.right;
      },
      id,
      { timeout: 5_000 },
    );
  }

  t.test('osr-log-user-handle: the findings beside the diagram, one item each, in order', async (t) => {
    const { page, done } = await open('osr-log-user-handle');
    const rows = findings['osr-log-user-handle'];
    t.equal(rows.length, 4, 'three failures explained and a handle left open');
    const items = page.locator('aside.ntflow-findings li.ntflow-finding');
    t.equal(await items.count(), rows.length, 'the list has the right count');
    t.same(await page.locator('aside.ntflow-findings li .ntflow-finding-title').allTextContents(), rows.map((r) => r.title), 'titles, in order');
    t.same(
      await items.evaluateAll((lis) => lis.map((li) => li.className.match(/severity-(\w+)/)?.[1])),
      rows.map((r) => r.severity),
      'severities',
    );
    t.match(await page.locator('aside.ntflow-findings h3').textContent(), /^Findings \(4\) 3 errors, 1 info$/);
    // The explanation: the item's tooltip, and its text when opened.
    const first = items.first();
    t.equal(await first.getAttribute('title'), rows[0].detail, 'the explanation is the tooltip');
    t.notOk(await first.locator('.ntflow-finding-detail').isVisible(), 'closed at first');
    await first.locator('summary').click();
    t.ok(await first.locator('.ntflow-finding-detail').isVisible(), 'opened by a click');
    t.equal(await first.locator('.ntflow-finding-detail').textContent(), rows[0].detail);
    // The red notes, one per failure-cause finding, each in its call's band.
    const notes = await page.locator('g.step.finding.severity-error').evaluateAll((gs) => gs.map((g) => g.getAttribute('data-finding')));
    t.same(notes, rows.filter((r) => r.kind === 'failure-cause').map((r) => String(r.id)));
    await done(t);
  });

  t.test('"next failure": the button, then n, then N — the first, second, third and back', async (t) => {
    const { page, done } = await open('osr-log-user-handle');
    const rows = findings['osr-log-user-handle'].filter((r) => r.kind === 'failure-cause');
    const next = page.locator('button.ntflow-next-failure');
    t.equal(await next.isDisabled(), false);
    t.equal(await page.locator('.ntflow-failure-pos').textContent(), '3 failures');
    t.same(await spotlight(page), [], 'nothing in the spotlight at first');

    await next.click();
    t.same(await spotlight(page), [`finding ${rows[0].id}`], `first: #${rows[0].syscall_id}'s red note`);
    await waitInView(page, rows[0].id);
    t.equal(await page.locator('.ntflow-failure-pos').textContent(), 'failure 1 of 3');
    t.same(await page.locator('aside li.spotlight').evaluateAll((lis) => lis.map((li) => li.getAttribute('data-finding'))), [String(rows[0].id)], 'its item highlighted');

    await next.click();
    t.same(await spotlight(page), [`finding ${rows[1].id}`], `second: #${rows[1].syscall_id}'s red note`);
    await waitInView(page, rows[1].id);
    t.equal(await page.locator('.ntflow-failure-pos').textContent(), 'failure 2 of 3');

    await page.locator('body').press('n');
    t.same(await spotlight(page), [`finding ${rows[2].id}`], 'n: the third');
    await page.locator('body').press('Shift+N');
    t.same(await spotlight(page), [`finding ${rows[1].id}`], 'N: back to the second');
    await page.locator('input.ntflow-search').press('n');
    t.same(await spotlight(page), [`finding ${rows[1].id}`], 'n typed into the search box is just a letter');
    await done(t);
  });

  t.test('collapsed: the failed bands stay marked, and "next failure" opens them', async (t) => {
    const { page, done } = await open('osr-log-user-handle');
    await page.locator('button.ntflow-collapse-all').click();
    t.equal(await page.locator('g.step.finding').count(), 0, 'the notes are folded away');
    const marks = await page.locator('g.band.failed.collapsed').evaluateAll((gs) => gs.map((g) => [g.getAttribute('data-syscall'), g.querySelector('text.fail-mark')?.textContent, !!g.querySelector('rect.fail-bar')]));
    t.same(
      marks,
      [
        ['4', '✗ inside: #5 NtWriteFile → STATUS_ACCESS_VIOLATION', true],
        ['7', '✗ inside: #8 NtWriteFile → STATUS_INVALID_HANDLE', true],
      ],
      "#4 holds the driver's failed #5; #7 (NtDelayExecution) the work item's #8 and #9",
    );
    const color = await page.locator('g.band[data-syscall="7"] text.fail-mark').evaluate((e) => (globalThis as unknown as Styled).getComputedStyle(e).fill);
    t.equal(color, 'rgb(198, 40, 40)', 'in red');
    const first = findings['osr-log-user-handle'][0];
    await page.locator('button.ntflow-next-failure').click();
    t.same(await spotlight(page), [`finding ${first.id}`], 'the first failure, inside #5 inside #4');
    t.equal(await page.locator('g.band[data-syscall="4"]').getAttribute('aria-expanded'), 'true', '#4 opened');
    t.equal(await page.locator('g.band[data-syscall="5"]').getAttribute('aria-expanded'), 'true', '#5 opened');
    await waitInView(page, first.id);
    await done(t);
  });

  t.test('a click on a finding brings its note into view', async (t) => {
    const { page, done } = await open('osr-log-user-handle');
    const third = findings['osr-log-user-handle'][2];
    await page.locator(`aside li[data-finding="${third.id}"] summary`).click();
    t.same(await spotlight(page), [`finding ${third.id}`]);
    await waitInView(page, third.id);
    t.equal(await page.locator('.ntflow-failure-pos').textContent(), 'failure 3 of 3', '"next failure" goes on from there');
    await done(t);
  });

  t.test('a clean session (user-nt-readfile): no red note, no failed mark, no failure to go to', async (t) => {
    const { page, done } = await open('user-nt-readfile');
    t.same(findings['user-nt-readfile'], []);
    t.equal(await page.locator('g.step.finding').count(), 0, 'no finding note');
    t.equal(await page.locator('g.band.failed').count(), 0, 'no failed band');
    t.equal(await page.locator('.fail-mark, .fail-bar').count(), 0, 'no failure mark');
    t.equal(await page.locator('aside.ntflow-findings').count(), 0, 'no findings list');
    const next = page.locator('button.ntflow-next-failure');
    t.equal(await next.isDisabled(), true);
    t.equal(await next.textContent(), 'no failures');
    await page.locator('body').press('n');
    t.same(await spotlight(page), [], 'n does nothing');
    await done(t);
  });

  t.test('ssdt-hook: the hook note is amber, where the hook first ran', async (t) => {
    const { page, done } = await open('ssdt-hook');
    const [hook] = findings['ssdt-hook'];
    t.equal(hook.kind, 'hook');
    const note = page.locator(`g.step.finding[data-finding="${hook.id}"]`);
    t.match(await note.getAttribute('class'), /\bseverity-warning\b/);
    t.equal(await note.getAttribute('data-seq'), String(hook.hook!.first_run_seq));
    const box = await note.locator('rect.finding-box').evaluate((e) => [(globalThis as unknown as Styled).getComputedStyle(e).stroke, (globalThis as unknown as Styled).getComputedStyle(e).fill]);
    t.same(box, ['rgb(178, 106, 0)', 'rgb(255, 243, 214)'], 'amber');
    t.match(await note.locator('text.label').textContent(), /^⚠ SSDT hook/);
    // The drawing is at its own size and pans: the finding's item in the list brings its note into view.
    await page.locator(`aside li.ntflow-finding[data-finding="${hook.id}"] summary`).click();
    await note.locator('rect.hit').hover({ position: { x: 12, y: 12 } });
    t.match(await page.locator('.ntflow-tooltip').textContent(), hook.detail, 'the tooltip explains it');
    t.equal(await page.locator('aside li.ntflow-finding.severity-warning').count(), 1, 'listed as a warning');
    t.equal(await page.locator('button.ntflow-next-failure').isDisabled(), true, 'a hook is no failure');
    await done(t);
  });
}
