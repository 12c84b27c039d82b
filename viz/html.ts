// The self-contained interactive HTML page: one file holding d3 (its UMD build, read from the
// installed package), the layout as JSON, the page script (viz/page/*.js, joined) and the stylesheet
// (viz/page/style.css). It makes no request at all — no CDN, no web font — so it opens offline from
// a file:// URL. Layout is computed in Node (viz/layout.ts); the page only draws those numbers.
//
// Safety: the layout goes into <script type="application/json"> with <, >, & and U+2028/U+2029
// written as \uXXXX escapes, so no label can close the element; the page script puts trace text
// into the DOM with d3's .text() only; and a Content-Security-Policy allows exactly the page's own
// inline scripts (by hash) and nothing from anywhere, so even markup that slipped through would
// neither load nor run.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FlameLayout, GraphLayout, SequenceLayout } from './types.js';

/** What the page draws, and how. */
export type DiagramSpec =
  | {
      kind: 'sequence';
      layout: SequenceLayout;
      caption?: string;
      collapse?: CollapseMode;
      /** The width the view pans over (not less than the layout's): a comparison's two diagrams, which pan together, use the wider one's. */
      fitWidth?: number;
      /** One of a comparison's two diagrams, aligned row by row with the other (viz/diff-page.ts). */
      link?: DiagramLink;
    }
  | { kind: 'flame'; layout: FlameLayout; caption?: string }
  | { kind: 'graph'; layout: GraphLayout; caption?: string };

/**
 * The diagrams of a comparison share their collapse state and view: `group` names the comparison,
 * `side` is 'a' or 'b', `keys` maps each paired call (syscalls.id) to the key its partner has too.
 */
export interface DiagramLink {
  group: string;
  side: 'a' | 'b';
  keys: Record<number, string>;
}

/**
 * A sequence diagram's first view: 'auto' (default) shows one row per system call when there are
 * more than 12 calls or 1 500 steps, every step otherwise; 'all' starts collapsed; 'none' expanded.
 */
export type CollapseMode = 'auto' | 'all' | 'none';

export interface HtmlOptions {
  /** The page's <title> and heading (default: the layout's title). */
  title?: string;
  /** Paragraphs above the diagram (text, escaped). */
  description?: string | string[];
  /** A line under the diagram's heading (text). */
  caption?: string;
  collapse?: CollapseMode;
  /** A link back to an index page (a relative URL, e.g. 'index.html'). */
  back?: { href: string; text: string };
}

/** One section of the index page: a scenario, what it shows, links to its pages, diagrams inline. */
export interface IndexSection {
  /** The anchor (e.g. the scenario name). */
  id: string;
  title: string;
  /** A one-line summary in smaller type. */
  summary?: string;
  paragraphs: string[];
  /** Facts as label → value (status, system calls, instructions). */
  facts?: [string, string][];
  /** Relative links only (pages written next to the index). */
  links?: { href: string; text: string }[];
  /** Diagrams drawn inline; two or more sit side by side. */
  diagrams?: DiagramSpec[];
  /** Parts of the section, each under its own heading (the demo's comparisons). */
  parts?: IndexPart[];
}

/** A part of an index section: a heading, paragraphs and links (relative, as the section's). */
export interface IndexPart {
  id: string;
  title: string;
  paragraphs: string[];
  links?: { href: string; text: string }[];
}

/** Links as a paragraph (relative URLs only). */
function linksHtml(links: { href: string; text: string }[] | undefined): string {
  return links?.length ? `<p class="links">${links.map((l) => `<a href="${escapeHtml(relativeHref(l.href))}">${escapeHtml(l.text)}</a>`).join('\n')}</p>\n` : '';
}

export interface IndexOptions {
  title?: string;
  intro?: string[];
}

// ---- escaping ------------------------------------------------------------------------------------

const HTML_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Text for HTML content or a quoted attribute value. */
export function escapeHtml(text: string): string {
  return visibleControls(String(text).replace(/[&<>"']/g, (c) => HTML_ESCAPES[c]));
}

/**
 * Control characters XML does not allow (C0 but tab, newline and carriage return; DEL) as the
 * text \xNN: a session or file name holding ESC would otherwise make a standalone SVG a file no
 * XML parser opens, and an HTML page draw nothing where the name is. As the terminal shows them.
 */
export function visibleControls(text: string): string {
  return text.replace(/[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/**
 * JSON safe inside a <script> element: `<`, `>`, `&`, U+2028 and U+2029 become \uXXXX escapes
 * (still the same JSON value), so `</script>` or `<!--` in a label cannot end or alter the element.
 */
export function scriptJson(value: unknown): string {
  const json = JSON.stringify(value);
  if (json === undefined) throw new TypeError('scriptJson: the value has no JSON form');
  return json.replace(/[<>&\u2028\u2029]/g, (c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0'));
}

/** A relative URL for a link: no scheme (http:, javascript:, file:), no protocol-relative //host. */
export function relativeHref(href: string): string {
  if (/^[a-z][a-z0-9+.-]*:/i.test(href) || href.startsWith('//') || href.startsWith('\\')) {
    throw new RangeError(`link '${href}': only relative links are allowed in a self-contained page (e.g. 'user-nt-readfile.html')`);
  }
  return href;
}

// ---- the page's assets ---------------------------------------------------------------------------

let assets: { d3: string; app: string; css: string } | null = null;

/** viz/page/, found from viz/ and from dist/viz/ alike. */
function pageDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    for (const candidate of [join(dir, 'page'), join(dir, 'viz', 'page')]) {
      if (existsSync(join(candidate, 'app.js')) && existsSync(join(candidate, 'style.css'))) return candidate;
    }
    dir = dirname(dir);
  }
  throw new Error('cannot find viz/page/app.js (the HTML page script)');
}

/** d3's UMD build (dist/d3.min.js) of the installed package. */
function d3Path(): string {
  // d3's exports map has no './package.json'; its entry point sits in dist/ next to d3.min.js.
  const entry = createRequire(import.meta.url).resolve('d3');
  const path = join(dirname(entry), 'd3.min.js');
  if (!existsSync(path)) throw new Error(`cannot find d3.min.js next to ${entry}`);
  return path;
}

/** A script's text, checked to be safe to put inside <script>…</script>. */
function inlineScript(text: string, what: string): string {
  if (/<\/script|<!--/i.test(text)) throw new Error(`${what} contains '</script' or '<!--' and cannot be inlined`);
  return text;
}

/**
 * The page script's parts, in order: shared pieces, the flame chart and call graph, the findings
 * list and "next failure", a comparison's linked diagrams, how a sequence diagram is viewed (at its
 * own size, panned; labels cut to the drawing), the sequence diagram, and app.js, which draws the
 * page's diagrams.
 */
const PAGE_PARTS = ['common.js', 'charts.js', 'findings.js', 'diff.js', 'view.js', 'sequence.js', 'app.js'];

/** The parts joined into one script, inside one function (one scope, strict mode, d3 from the UMD global). */
function pageScript(dir: string): string {
  const parts = PAGE_PARTS.map((file) => `// ---- viz/page/${file} ----\n${inlineScript(readFileSync(join(dir, file), 'utf8'), `viz/page/${file}`)}`);
  return `(function () {\n'use strict';\nconst d3 = window.d3;\n\n${parts.join('\n')}\n})();\n`;
}

function loadAssets(): { d3: string; app: string; css: string } {
  if (!assets) {
    const dir = pageDir();
    assets = {
      d3: inlineScript(readFileSync(d3Path(), 'utf8'), 'd3.min.js'),
      app: pageScript(dir),
      css: readFileSync(join(dir, 'style.css'), 'utf8').replace(/<\//g, '<\\/'),
    };
  }
  return assets;
}

const sha256 = (text: string) => `'sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}'`;

// ---- pages ---------------------------------------------------------------------------------------

/** A diagram's mount point and its data element. */
export function diagramHtml(spec: DiagramSpec, id: string, showTitle = true): string {
  const options: Record<string, unknown> = {};
  if (!showTitle) options.showTitle = false;
  if (spec.caption !== undefined) options.caption = spec.caption;
  if (spec.kind === 'sequence' && spec.collapse !== undefined) options.collapse = spec.collapse;
  if (spec.kind === 'sequence' && spec.fitWidth !== undefined) options.fitWidth = spec.fitWidth;
  if (spec.kind === 'sequence' && spec.link !== undefined) options.link = spec.link;
  const payload = { kind: spec.kind, layout: spec.layout, options };
  return (
    `<section class="ntflow-diagram ntflow-${spec.kind}" data-kind="${spec.kind}" data-source="${id}"></section>\n` +
    `<script type="application/json" id="${id}">${scriptJson(payload)}</script>\n`
  );
}

/** The whole document: head (CSP, style), body (HTML, its text already escaped), then d3 and the page script. */
export function documentHtml(title: string, body: string, bodyClass: string): string {
  const { d3, app, css } = loadAssets();
  const csp = [
    "default-src 'none'",
    `script-src ${sha256(d3)} ${sha256(app)}`,
    "style-src 'unsafe-inline'",
    'img-src data:',
    "base-uri 'none'",
    "form-action 'none'",
  ].join('; ');
  return [
    '<!doctype html>',
    '<html lang="en">',
    '<head>',
    '<meta charset="utf-8">',
    `<meta http-equiv="Content-Security-Policy" content="${csp}">`,
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    '<meta name="generator" content="ntflow">',
    // No favicon request: the icon is an empty data: URL.
    '<link rel="icon" href="data:,">',
    `<title>${escapeHtml(title)}</title>`,
    `<style>\n${css}</style>`,
    '</head>',
    `<body class="${bodyClass}">`,
    body,
    `<script>${d3}</script>`,
    `<script>${app}</script>`,
    '</body>',
    '</html>',
    '',
  ].join('\n');
}

export function paragraphs(text: string | string[] | undefined): string {
  if (text === undefined) return '';
  return (Array.isArray(text) ? text : [text]).map((p) => `<p>${escapeHtml(p)}</p>\n`).join('');
}

/** `notice`: what a large session's diagram leaves out (viz/elide.ts), said above it. */
function singlePage(spec: DiagramSpec, opts: HtmlOptions, notice: string[] = []): string {
  const title = opts.title ?? spec.layout.title;
  const back = opts.back ? `<nav><a href="${escapeHtml(relativeHref(opts.back.href))}">${escapeHtml(opts.back.text)}</a></nav>\n` : '';
  const said = notice.length ? `<div class="ntflow-notice" role="note">\n${paragraphs(notice)}</div>\n` : '';
  const body = `${back}<h1>${escapeHtml(title)}</h1>\n${paragraphs(opts.description)}${said}${diagramHtml(spec, 'ntflow-data-0', false)}`;
  return documentHtml(title, body, `ntflow-page ntflow-${spec.kind}-page`);
}

/** A sequence diagram as one self-contained interactive page. */
export function renderSequenceHtml(layout: SequenceLayout, opts: HtmlOptions = {}): string {
  return singlePage({ kind: 'sequence', layout, caption: opts.caption, collapse: opts.collapse }, opts, layout.notice);
}

/** A flame chart (calls over icount) as one self-contained interactive page. */
export function renderFlameHtml(layout: FlameLayout, opts: HtmlOptions = {}): string {
  return singlePage({ kind: 'flame', layout, caption: opts.caption }, opts);
}

/** An aggregated call graph as one self-contained interactive page. */
export function renderGraphHtml(layout: GraphLayout, opts: HtmlOptions = {}): string {
  return singlePage({ kind: 'graph', layout, caption: opts.caption }, opts);
}

/** The index page: a section per scenario (text, facts, links, diagrams inline and side by side). */
export function renderIndexPage(sections: IndexSection[], opts: IndexOptions = {}): string {
  const title = opts.title ?? 'ntflow diagrams';
  let n = 0;
  const toc = sections.map((s) => `<li><a href="#${escapeHtml(s.id)}">${escapeHtml(s.title)}</a></li>`).join('\n');
  const parts: string[] = [`<header>\n<h1>${escapeHtml(title)}</h1>\n${paragraphs(opts.intro)}</header>\n`];
  if (sections.length > 1) parts.push(`<nav class="toc"><ul>\n${toc}\n</ul></nav>\n`);
  for (const s of sections) {
    const facts = s.facts?.length ? `<p class="facts">${s.facts.map(([k, v]) => `${escapeHtml(k)}: <code>${escapeHtml(v)}</code>`).join(' · ')}</p>\n` : '';
    const links = linksHtml(s.links);
    const subparts = (s.parts ?? [])
      .map((p) => `<div class="part" id="${escapeHtml(p.id)}">\n<h3>${escapeHtml(p.title)}</h3>\n${paragraphs(p.paragraphs)}${linksHtml(p.links)}</div>\n`)
      .join('');
    const diagrams = (s.diagrams ?? []).map((d) => `<div class="cell">\n${diagramHtml(d, `ntflow-data-${n++}`)}</div>\n`).join('');
    parts.push(
      `<section class="scenario" id="${escapeHtml(s.id)}">\n<h2>${escapeHtml(s.title)}</h2>\n` +
        (s.summary ? `<p class="summary">${escapeHtml(s.summary)}</p>\n` : '') +
        paragraphs(s.paragraphs) +
        facts +
        links +
        (diagrams ? `<div class="${(s.diagrams ?? []).length > 1 ? 'side-by-side' : 'single'}">\n${diagrams}</div>\n` : '') +
        subparts +
        '</section>\n',
    );
  }
  return documentHtml(title, parts.join(''), 'ntflow-index');
}
