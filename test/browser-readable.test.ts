// A sequence diagram a person can read (issue 13, "Readability"), measured in a real browser
// (Debian's Chromium through playwright-core; a visible skip without it, a failure when CI=true), on
// the pages `ntflow flow` and `ntflow diff` write for osr-log-user-handle, osr-log-kernel-handle and
// user-zw-readfile:
//   (a) every text label of every diagram is drawn at ≥ 11 px at the initial zoom — its CSS font
//       size times the scale of its screen CTM (the zoom transform and anything above it);
//   (b) no label's box leaves the drawing's box (rect.drawing-area: the layout's width, the drawn height);
//   (c) "next failure" (the n key), pressed once per failed call, lands on each failed call of the
//       trace's `syscalls` table (status ≥ 0xC0000000) in turn, after "collapse all": each expanded
//       and inside the canvas's visible area; a collapsed band holding a failed call is marked;
//   (d) a search for a service name opens the bands it matches in and brings the first match into
//       view (no sideways pan past the drawing), and the count says what is shown;
//   (e) the comparison page stacks its two diagrams in a 700 px window, side by side in a wide one;
//   (f) no console error.
// Screenshots: test-artifacts/readable-*.png.
//   npx tsc -p tsconfig.json && npx tap dist/test/browser-readable.test.js
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import t from 'tap';
import Database from 'better-sqlite3';
import type { Browser, Page } from 'playwright-core';
import { ntflow } from './util/cli.js';
import { repoPath } from './util/paths.js';
import { foreignRequests, haveChromium, launchChromium, watchPage, type PageWatch } from './util/browser.js';

const SCENARIOS = ['osr-log-user-handle', 'osr-log-kernel-handle', 'user-zw-readfile'];
const WIDE = { width: 1600, height: 1000 };

/** One text label as the browser draws it (see measureLabels). */
interface Label {
  diagram: number;
  text: string;
  cls: string;
  /** CSS font size × the scale of the text's screen CTM: the size it is drawn at, in CSS px. */
  px: number;
  /** Its client rect's height (for a drawn glyph run, at least the font size). */
  boxHeight: number;
  /** How far its client rect sticks out of the drawing's (0 when inside), in CSS px. */
  outside: number;
}

/**
 * Every non-empty <text> of each diagram's svg, measured. Browser code as a string: the project
 * compiles without the DOM library.
 */
const MEASURE = `(() => {
  const out = [];
  document.querySelectorAll('section.ntflow-diagram svg.ntflow-svg').forEach((svg, diagram) => {
    const area = svg.querySelector('rect.drawing-area').getBoundingClientRect();
    for (const text of svg.querySelectorAll('text')) {
      if (!text.textContent.trim()) continue;
      const r = text.getBoundingClientRect();
      const m = text.getScreenCTM();
      const px = parseFloat(getComputedStyle(text).fontSize) * Math.hypot(m.a, m.b);
      const outside = Math.max(0, area.left - r.left, r.right - area.right, area.top - r.top, r.bottom - area.bottom);
      out.push({ diagram, text: text.textContent, cls: text.getAttribute('class') || text.parentNode.getAttribute('class') || '', px, boxHeight: r.height, outside });
    }
  });
  return out;
})()`;

/** Whether the selector's first element lies inside the visible part of its diagram's canvas (whole rows: vertical, and its left end in view). */
const IN_VIEW = (selector: string) => `(() => {
  const el = document.querySelector(${JSON.stringify(selector)});
  if (!el) return 'not drawn';
  const canvas = el.closest('.ntflow-canvas').getBoundingClientRect();
  const r = el.getBoundingClientRect();
  if (r.top < canvas.top || r.bottom > canvas.bottom) return 'out of view vertically: ' + [r.top, r.bottom, canvas.top, canvas.bottom].map(Math.round).join(' ');
  if (r.left < canvas.left - 1 || r.left > canvas.right - 20) return 'out of view sideways: ' + [r.left, canvas.left, canvas.right].map(Math.round).join(' ');
  return 'in view';
})()`;

/** The drawing covers the canvas sideways: not panned past its left or right end into emptiness. */
const NO_EMPTY_SIDE = `(() => {
  return [...document.querySelectorAll('section.ntflow-diagram svg.ntflow-svg')].map((svg) => {
    const canvas = svg.getBoundingClientRect();
    const area = svg.querySelector('rect.drawing-area').getBoundingClientRect();
    const narrower = area.width < canvas.width - 16;
    return narrower ? area.left >= canvas.left - 0.5 : area.left <= canvas.left + 8.5 && area.right >= canvas.right - 8.5;
  });
})()`;

if (haveChromium(t)) {
  const dir = mkdtempSync(join(tmpdir(), 'ntflow-browser-readable-'));
  const artifacts = repoPath('test-artifacts');
  let browser: Browser;
  const pages: Record<string, string> = {};
  /** The failed calls of each scenario's session, from its `syscalls` table. */
  const failed: Record<string, number[]> = {};

  t.before(async () => {
    mkdirSync(artifacts, { recursive: true });
    for (const scenario of SCENARIOS) {
      const db = join(dir, `${scenario}.db`);
      for (const args of [
        ['record', scenario, '-o', db],
        ['flow', db, '-o', join(dir, `${scenario}.html`)],
      ]) {
        const r = await ntflow(args);
        if (r.code !== 0) throw new Error(`ntflow ${args.join(' ')}: ${r.stderr}`);
      }
      pages[scenario] = join(dir, `${scenario}.html`);
      const d = new Database(db, { readonly: true });
      failed[scenario] = d
        .prepare('SELECT id FROM syscalls WHERE session_id = (SELECT max(id) FROM sessions) AND status >= 3221225472 ORDER BY enter_seq')
        .pluck()
        .all() as number[];
      d.close();
    }
    pages.diff = join(dir, 'diff.html');
    const r = await ntflow(['diff', join(dir, 'osr-log-user-handle.db'), join(dir, 'osr-log-kernel-handle.db'), '-o', pages.diff]);
    if (r.code !== 0) throw new Error(`ntflow diff: ${r.stderr}`);
    browser = await launchChromium();
  });
  t.teardown(async () => {
    await browser?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function open(name: string, viewport = WIDE): Promise<{ page: Page; watch: PageWatch; url: string }> {
    const page = await browser.newPage({ viewport });
    const watch = watchPage(page);
    const url = pathToFileURL(pages[name]).href;
    await page.goto(url);
    await page.waitForSelector('html[data-ntflow-ready="true"]', { timeout: 10_000 });
    return { page, watch, url };
  }

  for (const name of [...SCENARIOS, 'diff']) {
    t.test(`${name}: every label ≥ 11 px at the initial zoom, inside the drawing`, async (t) => {
      const { page, watch, url } = await open(name);
      const labels = (await page.evaluate(MEASURE)) as Label[];
      t.ok(labels.length > 50, `${labels.length} labels measured`);
      t.equal(new Set(labels.map((l) => l.diagram)).size, name === 'diff' ? 2 : 1, 'in every diagram');
      const small = labels.filter((l) => l.px < 11 - 1e-6);
      t.same(small.slice(0, 5), [], `no label under 11 px (smallest: ${Math.min(...labels.map((l) => l.px)).toFixed(2)} px)`);
      t.same(labels.filter((l) => l.boxHeight < 11).slice(0, 5), [], 'each drawn box at least 11 px tall');
      const out = labels.filter((l) => l.outside > 0.5);
      t.same(out.slice(0, 5), [], 'no label leaves the drawing');
      t.same(await page.evaluate(NO_EMPTY_SIDE), name === 'diff' ? [true, true] : [true], 'the drawing covers the canvas sideways');
      await page.screenshot({ path: join(artifacts, `readable-${name}.png`), fullPage: name !== 'diff' });
      t.same(watch.errors, [], 'no console error');
      t.same(foreignRequests(watch, url), [], 'no request but the page');
      await page.close();
    });
  }

  for (const scenario of ['osr-log-user-handle', 'osr-log-kernel-handle']) {
    t.test(`${scenario}: "next failure" lands on each failed call in turn, expanded and in view`, async (t) => {
      const { page, watch } = await open(scenario);
      t.ok(failed[scenario].length > 0, `the trace has failed calls: #${failed[scenario].join(', #')}`);
      await page.locator('button.ntflow-collapse-all').click();
      // Collapsed, each failed call is inside a band marked failed.
      const layout = JSON.parse((await page.locator('script#ntflow-data-0').textContent()) ?? '{}').layout as { bands: { syscallId: number; y0: number; y1: number }[] };
      const shown = await page.locator('g.band').evaluateAll((gs) => gs.map((g) => [Number(g.getAttribute('data-syscall')), (g.getAttribute('class') ?? '').includes('failed')] as const));
      for (const id of failed[scenario]) {
        const band = layout.bands.find((b) => b.syscallId === id)!;
        const marked = shown.filter(([sid, isFailed]) => {
          const b = layout.bands.find((x) => x.syscallId === sid)!;
          return isFailed && b.y0 <= band.y0 && band.y1 <= b.y1;
        });
        t.ok(marked.length > 0, `#${id} is inside a drawn band marked failed (#${marked.map(([s]) => s).join(', #')})`);
      }
      const visited: number[] = [];
      for (let k = 0; k < failed[scenario].length; k++) {
        await page.keyboard.press('n');
        const spot = page.locator('svg .spotlight').first();
        const id = Number(await spot.getAttribute('data-syscall'));
        visited.push(id);
        t.equal(await page.evaluate(IN_VIEW('svg .spotlight')), 'in view', `stop ${k + 1}: #${id} in view`);
        // Every band around it is expanded: the bands that hold it are drawn open.
        const band = layout.bands.find((b) => b.syscallId === id)!;
        const around = layout.bands.filter((b) => b.syscallId !== id && b.y0 < band.y0 + 1 && band.y0 + 1 < b.y1).map((b) => b.syscallId);
        for (const a of around) t.equal(await page.locator(`g.band[data-syscall="${a}"]`).getAttribute('aria-expanded'), 'true', `#${a}, around #${id}, expanded`);
        t.match(await page.locator('.ntflow-failure-pos').textContent(), `failure ${k + 1} of ${failed[scenario].length}`);
      }
      t.same(visited, failed[scenario], 'each failed call of the trace, in turn');
      await page.keyboard.press('n');
      t.equal(Number(await page.locator('svg .spotlight').first().getAttribute('data-syscall')), failed[scenario][0], 'and round again');
      await page.screenshot({ path: join(artifacts, `readable-${scenario}-failure.png`) });
      t.same(watch.errors, [], 'no console error');
      await page.close();
    });
  }

  t.test('osr-log-user-handle: a search for NtWriteFile opens the bands it matches in and shows the first match', async (t) => {
    const { page, watch } = await open('osr-log-user-handle');
    await page.locator('button.ntflow-collapse-all').click();
    const collapsedBefore = await page.locator('g.band.collapsed').count();
    t.ok(collapsedBefore > 3, `${collapsedBefore} bands collapsed`);
    t.equal(await page.locator('g.step.match').count(), 0);
    await page.locator('input.ntflow-search').fill('NtWriteFile');
    const matches = page.locator('.ntflow-matches');
    const shown = Number(await matches.getAttribute('data-shown'));
    const folded = Number(await matches.getAttribute('data-folded'));
    t.ok(shown > 0, `${shown} matches shown`);
    t.equal(folded, 0, 'none left folded away');
    t.equal(await page.locator('g.step.match').count(), shown, 'the count is what is drawn');
    t.match(await matches.textContent(), new RegExp(`^${shown} matches`));
    // The bands holding a match are open; the match's own call is #5, #6, #8 or #9 (NtWriteFile).
    for (const id of [5, 6, 8, 9]) {
      const band = page.locator(`g.band[data-syscall="${id}"]`);
      if ((await band.count()) && (await band.getAttribute('aria-expanded')) !== null) t.equal(await band.getAttribute('aria-expanded'), 'true', `#${id} NtWriteFile open`);
    }
    t.equal(await page.evaluate(IN_VIEW('g.step.current')), 'in view', 'the first match is in view');
    t.same(await page.evaluate(NO_EMPTY_SIDE), [true], 'not panned sideways into emptiness');
    await page.keyboard.press('Enter');
    t.equal(await page.evaluate(IN_VIEW('g.step.current')), 'in view', 'Enter: the next match, in view');
    await page.screenshot({ path: join(artifacts, 'readable-search.png') });
    t.same(watch.errors, [], 'no console error');
    await page.close();
  });

  t.test('the comparison stacks its diagrams in a narrow window and puts them side by side in a wide one', async (t) => {
    for (const [viewport, stacked] of [
      [{ width: 700, height: 900 }, true],
      [WIDE, false],
    ] as const) {
      const { page, watch } = await open('diff', viewport);
      const boxes = await page.locator('.diff-diagrams .ntflow-canvas').evaluateAll((els) =>
        els.map((e) => {
          const r = e.getBoundingClientRect();
          return { left: r.left, top: r.top, bottom: r.bottom, width: r.width };
        }),
      );
      t.equal(boxes.length, 2);
      const [a, b] = boxes;
      if (stacked) {
        t.ok(b.top >= a.bottom, `${viewport.width} px: B below A (${Math.round(a.bottom)} ≤ ${Math.round(b.top)})`);
        t.equal(Math.round(a.left), Math.round(b.left), 'one column');
        t.ok(a.width > viewport.width * 0.8, 'each the window wide');
        const labels = (await page.evaluate(MEASURE)) as Label[];
        t.same(labels.filter((l) => l.px < 11 - 1e-6).slice(0, 3), [], 'labels still ≥ 11 px');
        await page.screenshot({ path: join(artifacts, 'readable-diff-narrow.png'), fullPage: true });
      } else {
        t.equal(Math.round(a.top), Math.round(b.top), `${viewport.width} px: side by side`);
        t.ok(b.left >= a.left + a.width, 'B right of A');
      }
      t.same(watch.errors, [], 'no console error');
      await page.close();
    }
  });
}
