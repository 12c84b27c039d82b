// The flame chart and the call graph of osr-log-user-handle in Debian's Chromium (playwright-core;
// skipped with a reason when /usr/bin/chromium is missing, failed when CI=true), at the initial
// zoom: every label's rendered size is at least 11 px (its CSS font size times the screen scale of
// its SVG), no label leaves the drawing, a frame's label stays inside its frame, the threads'
// tracks do not overlap and hold their frames, failed frames and the failed service are in the
// failure colour, no console error. Zooming the flame chart widens frames, not text.
// Screenshots: test-artifacts/flame-osr-log-user-handle.png, test-artifacts/graph-osr-log-user-handle.png.
//   npx tsc -p tsconfig.json && npx tap dist/test/browser-charts.test.js
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import t, { type Test } from 'tap';
import Database from 'better-sqlite3';
import type { Browser, Page } from 'playwright-core';
import { record } from '../recorder/index.js';
import { replayFile } from '../analyzer/index.js';
import { flameInput, graphInput, layoutCallGraph, layoutFlame } from '../viz/index.js';
import { renderFlameHtml, renderGraphHtml } from '../viz/html.js';
import { repoPath } from './util/paths.js';
import { haveChromium, launchChromium, watchPage, type PageWatch } from './util/browser.js';

const VIEWPORT = { width: 1280, height: 900 };

// The page's globals, for the functions page.evaluate runs there (the project compiles without the DOM library).
/* eslint-disable @typescript-eslint/no-explicit-any */
declare const document: any;
declare function getComputedStyle(element: unknown): { fontSize: string; fill: string; stroke: string };
const FAIL = 'rgb(198, 40, 40)'; // COLORS.fail, --failed
const FAIL_FILL = 'rgb(253, 236, 234)'; // COLORS.failFill, --failed-fill

interface Label {
  text: string;
  px: number;
  box: { left: number; top: number; right: number; bottom: number };
}

/** Every non-empty text of the diagram's SVG: its rendered size and its box on the screen. */
async function labels(page: Page): Promise<{ labels: Label[]; drawing: Label['box'] }> {
  return page.evaluate(() => {
    const svg = document.querySelector('svg.ntflow-svg');
    const viewport = svg.querySelector('g.viewport');
    const data = JSON.parse(document.querySelector('script[type="application/json"]')!.textContent!);
    const m = viewport.getScreenCTM()!;
    // The drawing: the layout's width × height where the view puts it (the flame chart's header
    // space above the first track is left out of the page: its tracks start higher).
    const top = data.kind === 'flame' && data.layout.tracks.length ? Math.max(0, data.layout.tracks[0].y0 - 8) : 0;
    const drawing = { left: m.e, top: m.f + top * m.d, right: m.e + m.a * data.layout.width, bottom: m.f + m.d * data.layout.height };
    const out: Label[] = [];
    for (const el of svg.querySelectorAll('text')) {
      const text = el.textContent ?? '';
      if (!text.trim()) continue;
      const ctm = el.getScreenCTM()!;
      const r = el.getBoundingClientRect();
      out.push({ text, px: parseFloat(getComputedStyle(el).fontSize) * Math.hypot(ctm.a, ctm.b), box: { left: r.left, top: r.top, right: r.right, bottom: r.bottom } });
    }
    return { labels: out, drawing };
  });
}

if (haveChromium(t)) {
  const dir = mkdtempSync(join(tmpdir(), 'ntflow-browser-charts-'));
  let browser: Browser;
  const pages: Record<'flame' | 'graph', string> = { flame: join(dir, 'flame.html'), graph: join(dir, 'graph.html') };
  const out = repoPath('test-artifacts');

  t.before(async () => {
    const file = join(dir, 'osr.db');
    await record({ scenario: 'osr-log-user-handle' }, { output: file });
    replayFile(file);
    const db = new Database(file, { readonly: true });
    try {
      writeFileSync(pages.flame, renderFlameHtml(layoutFlame(flameInput(db, 1))));
      writeFileSync(pages.graph, renderGraphHtml(layoutCallGraph(graphInput(db, 1))));
    } finally {
      db.close();
    }
    browser = await launchChromium();
    mkdirSync(out, { recursive: true });
  });
  t.teardown(async () => {
    await browser?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function open(file: string): Promise<{ page: Page; watch: PageWatch }> {
    const page = await browser.newPage({ viewport: VIEWPORT });
    const watch = watchPage(page);
    await page.goto(pathToFileURL(file).href);
    await page.waitForSelector('html[data-ntflow-ready="true"]', { timeout: 10_000 });
    return { page, watch };
  }

  function readable(t: Test, what: string, got: { labels: Label[]; drawing: Label['box'] }): void {
    t.ok(got.labels.length > 10, `${what}: ${got.labels.length} labels`);
    const small = got.labels.filter((l) => l.px < 11 - 1e-6).map((l) => `${l.text} (${l.px.toFixed(1)} px)`);
    t.same(small, [], `${what}: every label at least 11 px (the smallest ${Math.min(...got.labels.map((l) => l.px)).toFixed(1)} px)`);
    const d = got.drawing;
    const outside = got.labels.filter((l) => l.box.left < d.left - 1 || l.box.right > d.right + 1 || l.box.top < d.top - 1 || l.box.bottom > d.bottom + 1).map((l) => l.text);
    t.same(outside, [], `${what}: no label outside the drawing`);
  }

  t.test('flame chart: readable, a track per thread, failures red', async (t) => {
    const { page, watch } = await open(pages.flame);
    readable(t, 'flame', await labels(page));

    const tracks = await page.$$eval('g.track', (gs) =>
      gs.map((g) => {
        const r = g.querySelector('rect')!.getBoundingClientRect();
        return { thread: g.getAttribute('data-thread'), label: g.querySelector('text')!.textContent, top: r.top, bottom: r.bottom };
      }),
    );
    t.same(
      tracks.map((x) => x.label),
      ['thread 0x7CC (osr-log-user.exe)', 'thread 8 (System)'],
    );
    t.ok(tracks[0].bottom <= tracks[1].top, `the tracks do not overlap (${tracks[0].bottom} ≤ ${tracks[1].top})`);

    const frames = await page.$$eval('g.frame', (gs) =>
      gs.map((g) => {
        const rect = g.querySelector('rect')!;
        const r = rect.getBoundingClientRect();
        const text = g.querySelector('text')!;
        const tr = text.getBoundingClientRect();
        return {
          thread: g.getAttribute('data-thread'),
          cls: g.getAttribute('class') ?? '',
          fill: getComputedStyle(rect).fill,
          text: text.textContent ?? '',
          box: { left: r.left, right: r.right, top: r.top, bottom: r.bottom },
          textBox: { left: tr.left, right: tr.right },
        };
      }),
    );
    t.ok(frames.length > 40, `${frames.length} frames`);
    const track = new Map(tracks.map((x) => [x.thread, x]));
    const astray = frames.filter((f) => {
      const tr = track.get(f.thread)!;
      return f.box.top < tr.top - 0.5 || f.box.bottom > tr.bottom + 0.5;
    });
    t.same(astray.map((f) => f.text), [], "every frame inside its thread's track");
    const spill = frames.filter((f) => f.text && f.textBox.right > f.box.right + 0.5).map((f) => f.text);
    t.same(spill, [], "every frame's label inside its frame (cut with …)");
    t.ok(frames.some((f) => f.text.endsWith('…')), 'some labels are cut');

    const failed = frames.filter((f) => / failed( |$)/.test(f.cls));
    t.equal(failed.length, 3, 'three failed calls: NtWriteFile twice, ZwWriteFile once (its KiSystemService frame)');
    t.same([...new Set(failed.map((f) => f.fill))], [FAIL], 'in the failure colour');
    const inside = frames.filter((f) => f.cls.includes('in-failed'));
    t.ok(inside.length >= 1, 'a frame inside a failed call');
    t.same([...new Set(inside.map((f) => f.fill))], [FAIL_FILL], 'in the failure fill');
    t.ok(await page.locator('.ntflow-legend-item.failed').isVisible(), 'the legend says what red means');

    await page.screenshot({ path: join(out, 'flame-osr-log-user-handle.png'), fullPage: true });

    // The full text is in the tooltip.
    const cut = page.locator('g.frame', { has: page.locator('text', { hasText: '…' }) }).first();
    await cut.hover();
    const heading = (await page.locator('.ntflow-tooltip-heading').textContent()) ?? '';
    t.ok(heading.length > 0 && !heading.endsWith('…'), `the tooltip has the whole symbol (${heading})`);


    // Folding NtReadFile's SYSENTER frame hides the failed NtWriteFile inside it: the fold is marked.
    const readEntry = page.locator('g.frame[data-thread="1996"]', { has: page.locator('text', { hasText: 'nt!NtReadFile' }) }).first();
    await page.mouse.move(0, 0);
    await readEntry.click();
    t.equal(await page.locator('g.frame.collapsed.holds-failure').count(), 1, 'a folded frame holding a failed call is marked');
    t.equal(await page.locator('g.frame.collapsed.holds-failure rect').evaluate((r) => getComputedStyle(r).stroke), FAIL, 'with a red border');
    await page.locator('button.ntflow-expand-all').click();
    t.equal(await page.locator('g.frame.collapsed').count(), 0, 'expand all unfolds it');

    // Zoom along x: the frames widen, the text stays 11 px and shows more of itself.
    const widthBefore = await page.locator('g.frame rect').first().evaluate((r) => r.getBoundingClientRect().width);
    const svgBox = (await page.locator('svg.ntflow-svg').boundingBox())!;
    await page.mouse.move(svgBox.x + svgBox.width / 2, svgBox.y + 80);
    await page.mouse.wheel(0, -600);
    await page.waitForFunction((w) => document.querySelector('g.frame rect').getBoundingClientRect().width > w * 1.5, widthBefore);
    const zoomed = await labels(page);
    t.same(zoomed.labels.filter((l) => l.px < 11 - 1e-6).map((l) => l.text), [], 'zoomed in: still 11 px');
    const cutAfter = await page.$$eval('g.frame text', (ts) => ts.filter((x) => (x.textContent ?? '').endsWith('…')).length);
    t.ok(cutAfter < frames.filter((f) => f.text.endsWith('…')).length, 'fewer labels cut once zoomed');
    t.same(watch.errors, [], 'no console error');
    await page.close();
  });

  t.test('call graph: readable, labels off the lines, the failed service red', async (t) => {
    const { page, watch } = await open(pages.graph);
    readable(t, 'graph', await labels(page));
    const nodes = await page.$$eval('g.node', (gs) =>
      gs.map((g) => {
        const rect = g.querySelector('rect')!;
        const r = rect.getBoundingClientRect();
        const spill = [...g.querySelectorAll('text')].some((x) => {
          const b = x.getBoundingClientRect();
          return b.left < r.left || b.right > r.right;
        });
        return { id: g.getAttribute('data-node'), cls: g.getAttribute('class') ?? '', stroke: getComputedStyle(rect).stroke, spill, text: g.textContent ?? '' };
      }),
    );
    t.same(nodes.filter((n) => n.spill).map((n) => n.id), [], 'every node label inside its node');
    t.same(nodes.filter((n) => n.text.includes('…')).map((n) => n.id), [], 'nodes are sized to their labels: none cut');
    const failed = nodes.filter((n) => n.cls.includes('failed'));
    t.same(failed.map((n) => n.id), ['nt!NtWriteFile']);
    t.equal(failed[0].stroke, FAIL, 'its border in the failure colour');
    t.match(failed[0].text, /✗ STATUS_ACCESS_VIOLATION, STATUS_INVALID_HANDLE ×2/);
    // Edge labels: on a white box, off the edge's line (the path does not pass through the box).
    const through = await page.$$eval('g.edge', (gs) =>
      gs
        .filter((g) => {
          const path = g.querySelector('path.arrow') as unknown as { getTotalLength(): number; getPointAtLength(n: number): { x: number; y: number } };
          const box = (g.querySelector('rect.edge-label-box') as unknown as { getBBox(): { x: number; y: number; width: number; height: number } }).getBBox();
          const n = path.getTotalLength();
          for (let i = 0; i <= 200; i++) {
            const p = path.getPointAtLength((n * i) / 200);
            if (p.x > box.x + 1 && p.x < box.x + box.width - 1 && p.y > box.y + 1 && p.y < box.y + box.height - 1) return true;
          }
          return false;
        })
        .map((g) => `${g.getAttribute('data-from')} → ${g.getAttribute('data-to')}`),
    );
    t.same(through, [], "no edge's curve runs through its own label");
    await page.screenshot({ path: join(out, 'graph-osr-log-user-handle.png'), fullPage: true });
    t.same(watch.errors, [], 'no console error');
    await page.close();
  });
}
