// The self-contained HTML page as text: nothing it loads comes from elsewhere, the layout JSON
// cannot break out of its <script> element, the Content-Security-Policy names exactly the inline
// scripts, and the demo page writes index.html and a page per scenario. (What the pages do in a
// browser: test/browser.test.ts.)
//   npx tsc -p tsconfig.json && npx tap dist/test/viz-html.test.js
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { parseHTML } from 'linkedom';
import { SCENARIOS } from '../core/index.js';
import { escapeHtml, renderFlameHtml, renderGraphHtml, renderIndexPage, renderSequenceHtml, scriptJson } from '../viz/html.js';
import type { FlameLayout, GraphLayout } from '../viz/types.js';
import { COMPARISONS, comparisonPage, runDemoPage } from '../bin/demo-page.js';
import { diffSessions, narrateSession, sessionFacts } from '../analyzer/index.js';
import { describeDiff } from '../viz/index.js';
import { HOSTILE_FILE, SCRIPT_BREAKER, sequenceFixture } from './util/browser.js';

const flame: FlameLayout = {
  title: `flame of ${HOSTILE_FILE}`,
  width: 400,
  height: 100,
  x0: 20,
  scale: 3.6,
  fromIcount: 0,
  totalIcount: 100,
  tracks: [{ threadId: 1996, label: `thread 0x7CC (${HOSTILE_FILE})`, y0: 40, y1: 96 }],
  rects: [
    { id: 1, threadId: 1996, x: 20, y: 60, width: 360, height: 17, label: 'prog!start', module: 'prog', cpl: 3 },
    { id: 2, threadId: 1996, x: 40, y: 78, width: 200, height: 17, label: SCRIPT_BREAKER, module: 'ntdll', cpl: 3 },
  ],
};
const graph: GraphLayout = {
  title: 'graph',
  width: 500,
  height: 120,
  nodes: [
    { id: 'prog!start', module: 'prog', ring: 3, x: 20, y: 40, width: 200, height: 28 },
    { id: HOSTILE_FILE, module: 'nt', ring: 0, x: 300, y: 40, width: 200, height: 28 },
  ],
  edges: [
    {
      from: 'prog!start',
      to: HOSTILE_FILE,
      count: 3,
      kind: 'call',
      points: [
        { x: 220, y: 54 },
        { x: 300, y: 54 },
      ],
      path: 'M220,54L300,54',
      label: '×3',
      labelBox: { x: 250, y: 30, width: 30, height: 16 },
    },
  ],
};

/** What a self-contained page must not contain: a URL it would fetch or navigate to by itself. */
function externalReferences(html: string): string[] {
  const found: string[] = [];
  const patterns = [
    /\b(?:src|href|action|poster|data)\s*=\s*["']?\s*(?:https?:)?\/\/[^\s"'>]*/gi, // src=, href= to http(s) or //host
    /\bimport\s*\(\s*["'`][^"'`]*["'`]\s*\)/g, // dynamic import of a URL
    /\bimport\s+[^;]*?from\s+["'`]https?:[^"'`]*/g,
    /@import\b/g,
    /url\(\s*["']?\s*(?:https?:)?\/\//gi,
    /<link\b[^>]*rel=["']?stylesheet/gi,
  ];
  for (const p of patterns) for (const m of html.matchAll(p)) found.push(m[0]);
  return found;
}

function scripts(html: string) {
  const { document } = parseHTML(html);
  return [...document.querySelectorAll('script')] as unknown as { getAttribute(n: string): string | null; textContent: string; id: string }[];
}

t.test('scriptJson escapes what could end or alter a <script> element, and stays the same JSON', async (t) => {
  const value = { label: `${SCRIPT_BREAKER} <!-- & \u2028\u2029 > ok` };
  const text = scriptJson(value);
  t.equal(
    text,
    '{"label":"\\u003c/script\\u003e\\u003cscript\\u003ealert(1)\\u003c/script\\u003e \\u003c!-- \\u0026 \\u2028\\u2029 \\u003e ok"}',
  );
  t.notMatch(text, /[<>&\u2028\u2029]/);
  t.same(JSON.parse(text), value);
  t.throws(() => scriptJson(undefined), TypeError);
  t.equal(escapeHtml(`<a href="x" title='y'>&</a>`), '&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;&lt;/a&gt;');
});

t.test('a sequence page is one self-contained file: d3, the data and the script inlined, no URL', async (t) => {
  const layout = sequenceFixture({ calls: 2, failFirst: true });
  const html = renderSequenceHtml(layout);
  t.match(html, /^<!doctype html>/);
  t.same(externalReferences(html), [], 'no src/href/import/url() to another place');
  t.match(html, /https:\/\/d3js\.org v7\./, "d3's own banner: the library is inlined");
  t.notMatch(html, /<script[^>]*\ssrc=/i, 'no script is loaded from a file');
  t.match(html, /<link rel="icon" href="data:,">/, 'the favicon is an empty data: URL, so the browser asks for none');
  const all = scripts(html);
  t.equal(all.length, 3, 'the data, d3 and the page script');
  const data = all.find((s) => s.getAttribute('type') === 'application/json')!;
  const payload = JSON.parse(data.textContent);
  t.equal(payload.kind, 'sequence');
  t.same(payload.layout, layout, 'the layout goes in unchanged');
});

t.test('a label holding </script><script>alert(1)</script> stays data', async (t) => {
  const layout = sequenceFixture({ fileName: SCRIPT_BREAKER, title: `title ${SCRIPT_BREAKER}` });
  const html = renderSequenceHtml(layout, { description: `about ${SCRIPT_BREAKER}` });
  t.notOk(html.includes('<script>alert(1)'), 'the text never appears as markup');
  const all = scripts(html);
  t.equal(all.length, 3, 'no extra script element');
  const payload = JSON.parse(all.find((s) => s.getAttribute('type') === 'application/json')!.textContent);
  t.ok(
    payload.layout.steps.some((s: { label: string }) => s.label === `file: ${SCRIPT_BREAKER}`),
    'the label comes back byte for byte',
  );
  t.equal(payload.layout.title, `title ${SCRIPT_BREAKER}`);
  const { document } = parseHTML(html);
  t.equal(document.querySelector('title')!.textContent, `title ${SCRIPT_BREAKER}`, '<title> holds it as text');
  t.match(document.querySelector('p')!.textContent, `about ${SCRIPT_BREAKER}`, 'and so does the description');
});

t.test('the Content-Security-Policy allows exactly the inline scripts and nothing from anywhere', async (t) => {
  const html = renderSequenceHtml(sequenceFixture());
  const { document } = parseHTML(html);
  const csp = document.querySelector('meta[http-equiv="Content-Security-Policy"]')!.getAttribute('content')!;
  t.match(csp, /default-src 'none'/);
  t.notMatch(csp, /unsafe-inline[^;]*;?\s*$|script-src[^;]*unsafe/, 'no unsafe-inline for scripts (so no inline event handler can run)');
  const executable = scripts(html).filter((s) => s.getAttribute('type') === null);
  t.equal(executable.length, 2);
  for (const s of executable) {
    const hash = `'sha256-${createHash('sha256').update(s.textContent, 'utf8').digest('base64')}'`;
    t.ok(csp.includes(hash), 'the CSP names the script by its hash');
  }
});

t.test('flame chart and call graph pages are self-contained too', async (t) => {
  for (const [kind, html] of [
    ['flame', renderFlameHtml(flame)],
    ['graph', renderGraphHtml(graph)],
  ] as const) {
    t.same(externalReferences(html), [], `${kind}: no URL`);
    const all = scripts(html);
    t.equal(all.length, 3, `${kind}: three scripts`);
    const payload = JSON.parse(all.find((s) => s.getAttribute('type') === 'application/json')!.textContent);
    t.equal(payload.kind, kind);
    t.notOk(html.includes(HOSTILE_FILE), `${kind}: the hostile name is never raw markup`);
  }
});

t.test('the index page: sections, relative links only, diagrams inline side by side', async (t) => {
  const a = sequenceFixture({ title: 'left' });
  const b = sequenceFixture({ title: 'right' });
  const html = renderIndexPage(
    [
      { id: 'pair', title: 'Side by side', paragraphs: ['two'], diagrams: [{ kind: 'sequence', layout: a }, { kind: 'sequence', layout: b }] },
      { id: 'one', title: HOSTILE_FILE, paragraphs: [SCRIPT_BREAKER], links: [{ href: 'one.html', text: 'one' }], facts: [['status', 'STATUS_SUCCESS']] },
    ],
    { title: 'demo', intro: ['hello'] },
  );
  t.same(externalReferences(html), []);
  const { document } = parseHTML(html);
  t.equal(document.querySelectorAll('section.ntflow-diagram').length, 2);
  t.equal(document.querySelectorAll('.side-by-side section.ntflow-diagram').length, 2, 'both in the side-by-side grid');
  const ids = [...document.querySelectorAll('section.ntflow-diagram')].map((s) => (s as unknown as { getAttribute(n: string): string }).getAttribute('data-source'));
  t.same(ids, ['ntflow-data-0', 'ntflow-data-1'], 'each diagram reads its own data element');
  t.equal(document.querySelector('#one h2')!.textContent, HOSTILE_FILE, 'a heading from data is text');
  t.equal(document.querySelectorAll('img').length, 0);
  t.equal(scripts(html).length, 4, 'two data elements, d3, the page script: nothing injected');
  for (const href of ['http://example.com/x.html', 'javascript:alert(1)', '//evil.example/x', 'file:///etc/passwd']) {
    t.throws(() => renderIndexPage([{ id: 'x', title: 'x', paragraphs: [], links: [{ href, text: 'x' }] }]), RangeError, `refuses ${href}`);
  }
});

t.test('the demo page: every scenario recorded, index.html and a page per scenario', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ntflow-demo-page-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const lines: string[] = [];
  const result = await runDemoPage({ out: join(dir, 'traces'), log: (l) => lines.push(l), registerSteps: 10 });
  t.equal(result.index, join(dir, 'traces', 'index.html'));
  t.ok(existsSync(result.db), 'demo.db');
  t.ok(result.seconds > 0, `it reports how long it took (${result.seconds.toFixed(1)} s; speed is the benchmark's business)`);
  t.match(lines.join('\n'), /open .*index\.html/, 'it says where the page is');
  t.match(lines.join('\n'), /file:\/\/.*index\.html/);
  const index = readFileSync(result.index, 'utf8');
  t.same(externalReferences(index), []);
  for (const s of SCENARIOS) {
    for (const suffix of ['.html', '.flame.html', '.graph.html']) {
      const file = join(dir, 'traces', s.name + suffix);
      t.ok(existsSync(file), `${s.name}${suffix}`);
      t.ok(index.includes(`href="${s.name}${suffix}"`), `index links ${s.name}${suffix}`);
    }
    t.ok(index.includes(`id="${s.name}"`), `a section for ${s.name}`);
    const page = readFileSync(join(dir, 'traces', `${s.name}.html`), 'utf8');
    t.same(externalReferences(page), [], `${s.name}.html is self-contained`);
  }
  t.equal(result.pages.length, 1 + 3 * SCENARIOS.length + COMPARISONS.length);
  const { document } = parseHTML(index);
  t.equal(document.querySelectorAll('#nt-vs-zw section.ntflow-diagram').length, 2, 'user-nt-readfile and kernel-zw-readfile side by side');
  const paragraphs = document.querySelectorAll('section.scenario p');
  const text = [...paragraphs].map((p) => (p as unknown as { textContent: string }).textContent).join('\n');
  for (const lesson of ['PreviousMode', 'OBJ_KERNEL_HANDLE', 'APC', 'KiServiceTable[0xB7]', 'ZwReadFile', 'SYSENTER']) t.match(text, lesson, `the paragraphs explain ${lesson}`);

  // The comparisons (issue H): four, each with what its diff found — the sentences generated from
  // the DiffResult, nothing else — and a link to its page, written next to index.html.
  const parts = [...document.querySelectorAll('#comparisons .part')] as unknown as { id: string; querySelector(s: string): { textContent: string } | null; querySelectorAll(s: string): Iterable<{ textContent: string; getAttribute(n: string): string | null }> }[];
  t.same(parts.map((p) => p.querySelector('h3')?.textContent), COMPARISONS.map((c) => `${c.a} vs ${c.b}`), 'the four comparisons');
  const { default: Sqlite2 } = await import('better-sqlite3');
  const trace2 = new Sqlite2(result.db, { readonly: true });
  const sessionOf = (name: string) => trace2.prepare('SELECT id FROM sessions WHERE name = ?').pluck().get(name) as number;
  for (const [i, c] of COMPARISONS.entries()) {
    const said = [...parts[i].querySelectorAll('p:not(.links)')].map((p) => p.textContent);
    const r = diffSessions({ db: trace2, file: result.db, sessionId: sessionOf(c.a) }, { db: trace2, file: result.db, sessionId: sessionOf(c.b) });
    t.same(said, [c.why, ...describeDiff(r)], `${c.a} vs ${c.b}: why, then what the diff found, generated from its result`);
    const links = [...parts[i].querySelectorAll('a')].map((a) => a.getAttribute('href'));
    t.same(links, [comparisonPage(c)]);
    t.ok(existsSync(join(dir, 'traces', comparisonPage(c))), `${comparisonPage(c)} is there`);
    t.same(externalReferences(readFileSync(join(dir, 'traces', comparisonPage(c)), 'utf8')), [], `${comparisonPage(c)} is self-contained`);
  }
  trace2.close();
  const compText = (i: number) => [...parts[i].querySelectorAll('p')].map((p) => p.textContent).join('\n');
  t.match(compText(3), /paths first part at SharedUserData!SystemCallStub `mov edx,esp` in user-nt-readfile against SharedUserData!KiIntSystemCall `lea edx,\[esp\+8\]` in int2e-readfile, and join again at nt!KiSystemService\+0x5c/, 'int2e: where the paths part and join');
  t.match(compText(3), /What differs in outcome \(user-nt-readfile → int2e-readfile\): in all 4 pairs \(#1 NtCreateFile, #2 NtReadFile, #3 NtClose and #4 NtTerminateProcess\), entry sysenter → int2e\./);
  t.match(compText(0), /only in kernel-zw-readfile: #1 NtCreateFile \(zw-kernel, KernelMode, System\) and #4 NtReadFile \(zw-kernel, KernelMode, device-read\.exe\)/, 'kernel-zw: the calls only in B');
  t.match(compText(1), /in #5 NtWriteFile, status STATUS_ACCESS_VIOLATION → STATUS_INVALID_HANDLE, /, 'osr-log: the statuses that differ');
  t.match(compText(1), /; in #8 NtWriteFile and #9 NtWriteFile, status STATUS_INVALID_HANDLE → STATUS_SUCCESS, /);
  t.match(compText(2), /in #2 NtReadFile, SSDT target nt!NtReadFile → ssdt-hook!HookNtReadFile\./, 'ssdt-hook: the routine the table gave');

  // What happened is generated from the trace: every call of osr-log-user-handle with its status
  // and PreviousMode as its syscalls row has them, and a changed row changes the text.
  const { default: Sqlite } = await import('better-sqlite3');
  const osrText = [...document.querySelectorAll('#osr-log-user-handle p')].map((p) => (p as unknown as { textContent: string }).textContent).join('\n');
  const trace = new Sqlite(result.db);
  const osr = trace.prepare("SELECT id FROM sessions WHERE name = 'osr-log-user-handle'").pluck().get() as number;
  const rows = trace.prepare('SELECT id, name, previous_mode, status_name FROM syscalls WHERE session_id = ? ORDER BY id').all(osr) as { id: number; name: string; previous_mode: string; status_name: string | null }[];
  t.ok(rows.length > 0);
  for (const r of rows) {
    const said = new RegExp(`#${r.id} ${r.name}\\b[^.→]*${r.status_name ? `→ ${r.status_name}` : 'did not return'}`);
    t.match(osrText, said, `#${r.id} ${r.name}: ${r.status_name ?? 'did not return'}`);
  }
  t.match(osrText, /#5 NtWriteFile[^.→]*PreviousMode UserMode[^.→]*→ STATUS_ACCESS_VIOLATION/);
  // Why what failed failed: the session's findings, each title and explanation (issue G part 3).
  const osrFindings = trace.prepare('SELECT title, detail FROM findings WHERE session_id = ? ORDER BY id').all(osr) as { title: string; detail: string }[];
  t.equal(osrFindings.length, 4, 'three failures explained and a handle left open');
  for (const f of osrFindings) {
    t.ok(osrText.includes(f.title), `the finding's title: ${f.title}`);
    t.ok(osrText.includes(f.detail), 'and its explanation');
  }
  const cleanText = [...document.querySelectorAll('#user-nt-readfile p')].map((p) => (p as unknown as { textContent: string }).textContent).join('\n');
  t.match(cleanText, /0 failed calls explained, 0 handles left open, 0 hooks\. No system call failed: all 3 calls that returned succeeded \(#1 NtCreateFile → STATUS_SUCCESS, #2 NtReadFile → STATUS_SUCCESS, #3 NtClose → STATUS_SUCCESS\)/, 'a clean session says so, from its rows');
  trace.prepare("UPDATE syscalls SET status = 0xC0000022, status_name = 'STATUS_ACCESS_DENIED' WHERE session_id = ? AND id = 5").run(osr);
  const changed = narrateSession(sessionFacts(trace, osr)).join('\n');
  t.match(changed, /#5 NtWriteFile[^.→]*→ STATUS_ACCESS_DENIED\./, 'the text follows the row');
  t.notMatch(changed, /#5 NtWriteFile[^.→]*→ STATUS_ACCESS_VIOLATION\./);
  trace.close();

  // A second run starts from a fresh file (the same 13 sessions, not 26).
  const again = await runDemoPage({ out: join(dir, 'traces'), log: () => {}, registerSteps: 0 });
  const { default: Database } = await import('better-sqlite3');
  const db = new Database(again.db, { readonly: true });
  t.equal((db.prepare('SELECT count(*) FROM sessions').pluck().get() as number), SCENARIOS.length, 'a fresh demo.db each run');
  db.close();
});
