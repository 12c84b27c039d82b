// The comparison page (`ntflow diff A B -o diff.html`, issue H) in a real browser — Debian's
// Chromium through playwright-core (a visible skip without it, a failure when CI=true):
// user-nt-readfile vs int2e-readfile draws both diagrams; each of the four pairs starts on the same
// row on both sides (in the layout and on the screen); in each pair the first divergence is marked
// on both sides (SharedUserData!SystemCallStub `mov edx,esp` against SharedUserData!KiIntSystemCall
// `lea edx,[esp+8]`) and the join at nt!KiSystemService+0x5c too; folding a call folds its partner
// and the rows stay aligned; a pan of one diagram moves the other; a click on a row of the table of
// pairs brings that pair into view on both; the page logs no error and asks for nothing. user-nt-readfile vs kernel-zw-readfile: the calls only in B leave gaps on A.
//   npx tsc -p tsconfig.json && npx tap dist/test/browser-diff.test.js
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import t from 'tap';
import Database from 'better-sqlite3';
import type { Browser, Page } from 'playwright-core';
import { record } from '../recorder/index.js';
import { diffSessions, replayFile, type DiffResult } from '../analyzer/index.js';
import { renderDiffHtml } from '../viz/index.js';
import { foreignRequests, haveChromium, launchChromium, watchPage, type PageWatch } from './util/browser.js';

const VIEWPORT = { width: 1600, height: 1000 };

if (haveChromium(t)) {
  const dir = mkdtempSync(join(tmpdir(), 'ntflow-browser-diff-'));
  let browser: Browser;
  const pages: Record<string, string> = {};
  const results: Record<string, DiffResult> = {};

  t.before(async () => {
    const file = join(dir, 'pairs.db');
    const ids = new Map<string, number>();
    for (const s of ['user-nt-readfile', 'int2e-readfile', 'kernel-zw-readfile']) ids.set(s, (await record({ scenario: s }, { output: file, name: s })).sessionId);
    replayFile(file);
    const db = new Database(file, { readonly: true });
    try {
      for (const other of ['int2e-readfile', 'kernel-zw-readfile']) {
        const A = { db, file, sessionId: ids.get('user-nt-readfile')! };
        const B = { db, file, sessionId: ids.get(other)! };
        results[other] = diffSessions(A, B);
        pages[other] = join(dir, `${other}.html`);
        writeFileSync(pages[other], renderDiffHtml(results[other], A, B, { registerSteps: 10 }));
      }
    } finally {
      db.close();
    }
    browser = await launchChromium();
  });
  t.teardown(async () => {
    await browser?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function open(name: string): Promise<{ page: Page; watch: PageWatch; url: string }> {
    const page = await browser.newPage({ viewport: VIEWPORT });
    const watch = watchPage(page);
    const url = pathToFileURL(pages[name]).href;
    await page.goto(url);
    await page.waitForSelector('html[data-ntflow-ready="true"]', { timeout: 10_000 });
    return { page, watch, url };
  }

  /** Where an element of side A's or B's diagram is: its y in the diagram (translate) and its top on the screen. */
  async function place(page: Page, side: 'a' | 'b', selector: string): Promise<{ y: number; top: number; text: string } | null> {
    const el = page.locator(`.cell[data-side="${side}"] ${selector}`);
    if ((await el.count()) !== 1) return null;
    return el.evaluate((e) => {
      const m = /translate\(0,([-\d.]+)\)/.exec(e.getAttribute('transform') ?? '');
      return { y: m ? Number(m[1]) : NaN, top: Math.round((e as unknown as { getBoundingClientRect(): { top: number } }).getBoundingClientRect().top * 10) / 10, text: e.textContent ?? '' };
    });
  }

  const band = (id: number) => `g.band[data-syscall="${id}"]`;
  const mark = (kind: string, pair: number) => `g.step.diff-mark[data-diff="${kind}"][data-pair="${pair}"][data-diff-index="0"]`;

  t.test('user-nt-readfile vs int2e-readfile: both diagrams, the pairs on one row, the divergence and the join marked', async (t) => {
    const { page, watch, url } = await open('int2e-readfile');
    const r = results['int2e-readfile'];
    t.equal(await page.locator('section.ntflow-diagram').count(), 2, 'two diagrams');
    t.equal(await page.locator('section.ntflow-diagram[data-ready="true"] svg.ntflow-svg').count(), 2, 'both drawn');
    t.match(await page.locator('.cell[data-side="a"] .ntflow-title').textContent(), /^A: user-nt-readfile/);
    t.match(await page.locator('.cell[data-side="b"] .ntflow-title').textContent(), /^B: int2e-readfile/);
    t.equal(r.pairs.length, 4);
    for (const [k, p] of r.pairs.entries()) {
      const name = p.a!.service;
      const [a, b] = [await place(page, 'a', band(p.a!.id)), await place(page, 'b', band(p.b!.id))];
      t.ok(a && b, `${name}: a band on each side`);
      t.equal(a!.y, b!.y, `${name}: its first row has one y on both sides (${a!.y})`);
      t.equal(a!.top, b!.top, `${name}: and one height on the screen`);
      const [da, db] = [await place(page, 'a', mark('diverge', k)), await place(page, 'b', mark('diverge', k))];
      t.match(da?.text, /SharedUserData!SystemCallStub {2}mov edx,esp/, `${name}: A's first divergence marked with A's instruction`);
      t.match(db?.text, /SharedUserData!KiIntSystemCall {2}lea edx,\[esp\+8\]/, `${name}: B's, with B's`);
      t.equal(da!.y, db!.y, `${name}: on one row`);
      t.equal(da!.top, db!.top);
      const [ja, jb] = [await place(page, 'a', mark('join', k)), await place(page, 'b', mark('join', k))];
      t.match(ja?.text, /^= paths join again: nt!KiSystemService\+0x5c /, `${name}: the join marked on A`);
      t.match(jb?.text, /^= paths join again: nt!KiSystemService\+0x5c /, 'and on B');
      t.equal(ja!.y, jb!.y, `${name}: on one row`);
    }
    const stroke = await page.locator(`.cell[data-side="a"] ${mark('diverge', 0)} rect.diff-box`).evaluate((e) => (globalThis as unknown as { getComputedStyle(e: unknown): { stroke: string } }).getComputedStyle(e).stroke);
    t.equal(stroke, 'rgb(194, 24, 143)', 'outlined in magenta');
    t.match(await page.locator('p.counts').textContent(), /^4 calls aligned: 4 paired \(0 the same\), 0 only in A, 0 only in B; the instruction streams part 7 times/, 'the summary above');
    t.equal(await page.locator('table.diff-pairs tbody tr').count(), 4, 'a row per pair');
    t.same(watch.errors, [], 'no console error');
    t.same(foreignRequests(watch, url), [], 'no request but the page');
    await page.close();
  });

  t.test('folding a call folds its partner, and the rows stay aligned; a pan moves both; the table shows a pair', async (t) => {
    const { page, watch } = await open('int2e-readfile');
    // A diagram is drawn at its own size, wider than its canvas: its title row is clicked near its left end (in view).
    await page.locator(`.cell[data-side="a"] ${band(2)} rect.band-head`).click({ position: { x: 40, y: 12 } });
    t.equal(await page.locator(`.cell[data-side="a"] ${band(2)}`).getAttribute('aria-expanded'), 'false', "A's #2 folded");
    t.equal(await page.locator(`.cell[data-side="b"] ${band(2)}`).getAttribute('aria-expanded'), 'false', "B's #2 with it");
    const [a, b] = [await place(page, 'a', band(3)), await place(page, 'b', band(3))];
    t.equal(a!.y, b!.y, '#3 still on one row');
    t.equal(a!.top, b!.top);
    await page.locator(`.cell[data-side="b"] ${band(2)} rect.band-head`).click({ position: { x: 40, y: 12 } });
    t.equal(await page.locator(`.cell[data-side="a"] ${band(2)}`).getAttribute('aria-expanded'), 'true', "unfolded from B's side");

    const box = await page.locator('.cell[data-side="a"] .ntflow-canvas').boundingBox();
    await page.mouse.move(box!.x + box!.width / 2, box!.y + box!.height / 2);
    await page.mouse.wheel(0, 400);
    await page.waitForFunction(() => {
      const doc = (globalThis as unknown as { document: { querySelectorAll(s: string): ArrayLike<{ getAttribute(n: string): string | null }> } }).document;
      const vs = doc.querySelectorAll('g.viewport');
      return vs.length === 2 && vs[0].getAttribute('transform') === vs[1].getAttribute('transform') && vs[0].getAttribute('transform') !== null;
    });
    const transforms = await page.locator('g.viewport').evaluateAll((gs) => gs.map((g) => g.getAttribute('transform')));
    t.equal(transforms[0], transforms[1], `one view on both sides (${transforms[0]})`);
    const [a4, b4] = [await place(page, 'a', band(4)), await place(page, 'b', band(4))];
    t.equal(a4!.top, b4!.top, 'after the wheel (a pan; ctrl + wheel zooms) #4 is on one height on the screen');

    // The table of pairs: a click on #1's row brings #1 into view on both sides.
    await page.locator('table.diff-pairs tr[data-a="1"]').click();
    t.match(await page.locator(`.cell[data-side="a"] ${band(1)}`).getAttribute('class'), /\bspotlight\b/, "#1's band in the spotlight");
    await page.waitForFunction(() => {
      type Box = { top: number; bottom: number };
      const doc = (globalThis as unknown as { document: { querySelector(s: string): { getBoundingClientRect(): Box } | null } }).document;
      return ['a', 'b'].every((side) => {
        const b = doc.querySelector(`.cell[data-side="${side}"] g.band[data-syscall="1"]`);
        const c = doc.querySelector(`.cell[data-side="${side}"] .ntflow-canvas`);
        if (!b || !c) return false;
        const [x, y] = [b.getBoundingClientRect(), c.getBoundingClientRect()];
        return x.top >= y.top && x.top <= y.bottom;
      });
    });
    t.pass('#1 in view on both sides');
    t.same(watch.errors, []);
    await page.close();
  });

  t.test('user-nt-readfile vs kernel-zw-readfile: the calls only in B leave gaps on A, the pairs stay aligned', async (t) => {
    const { page, watch, url } = await open('kernel-zw-readfile');
    const r = results['kernel-zw-readfile'];
    const onlyB = r.pairs.filter((p) => !p.a).map((p) => p.b!.id);
    t.same(onlyB, [1, 4], "the driver's NtCreateFile in DriverEntry and its ZwReadFile");
    const gaps = await page.locator('.cell[data-side="a"] g.gap').evaluateAll((gs) =>
      gs.map((g) => ({ others: (g.getAttribute('data-others') ?? '').split(' ').filter(Boolean).map(Number), y0: Number(g.getAttribute('data-y0')), y1: Number(g.getAttribute('data-y1')), label: g.querySelector('title')?.textContent ?? '' })),
    );
    for (const id of onlyB) {
      const b = page.locator(`.cell[data-side="b"] ${band(id)}`);
      const y0 = (await place(page, 'b', band(id)))!.y;
      const y1 = y0 + Number(await b.locator('rect.band-rect').getAttribute('height'));
      const covering = gaps.filter((g) => g.others.includes(id));
      t.ok(covering.length > 0, `#${id}: a gap on A stands for it`);
      t.match(covering[0]?.label, new RegExp(`^only in B: .*#${id} NtReadFile|^only in B: .*#${id} NtCreateFile`));
      t.equal(await page.locator(`.cell[data-side="a"] g.step`).evaluateAll((gs, [lo, hi]) => gs.filter((g) => {
        const m = /translate\(0,([-\d.]+)\)/.exec(g.getAttribute('transform') ?? '');
        const y = m ? Number(m[1]) : NaN;
        return y > lo && y < hi;
      }).length, [y0, y1]), 0, `#${id}: A draws nothing beside it`);
      t.ok(covering.some((g) => g.y0 <= y0 + 24 && g.y1 >= y1 - 24) || covering.reduce((n, g) => n + (g.y1 - g.y0), 0) >= y1 - y0 - 24, `#${id}: the gap is as tall as the call (${y0}–${y1})`);
    }
    for (const p of r.pairs.filter((x) => x.a && x.b)) {
      const [a, b] = [await place(page, 'a', band(p.a!.id)), await place(page, 'b', band(p.b!.id))];
      t.equal(a!.y, b!.y, `#${p.a!.id} ${p.a!.service} ↔ #${p.b!.id}: one row`);
    }
    t.same(watch.errors, [], 'no console error');
    t.same(foreignRequests(watch, url), [], 'no request but the page');
    await page.close();
  });
}
