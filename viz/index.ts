// viz/ public API: trace → inputs (data), inputs → numbers (layout), numbers → SVG (svg). One export line per feature.
export type * from './types.js';
export { sequenceInput, ensureSessionProjections, masmHex, VizInputError, type SequenceOptions, type ExtraNote } from './data.js';
export { flameInput, graphInput } from './data-charts.js';
export { layoutSequence, layoutFlame, layoutCallGraph, type SequenceLayoutOptions, type FlameLayoutOptions, type GraphLayoutOptions } from './layout.js';
export { renderSequenceSvg, renderFlameSvg, renderGraphSvg, COLORS } from './svg.js';
export { renderSequenceHtml, renderFlameHtml, renderGraphHtml, renderIndexPage, escapeHtml, type HtmlOptions, type IndexSection, type IndexPart, type DiagramLink, type IndexOptions, type DiagramSpec, type CollapseMode } from './html.js';
export { renderDiffHtml, diffLayouts, diffNotes, type DiffPageSide, type DiffPageOptions } from './diff-page.js';
export { alignLayouts, type PairIds } from './diff-layout.js';
export { describeDiff, countsLine, pairLabel } from './diff-summary.js';
export { renderSequenceMermaid, mermaidText, MERMAID_MAX_TEXT, type MermaidOptions, type MermaidDiagram } from './mermaid.js';
export { elideCalls, capSteps, elisionNotice, aggregateLabel, aggregateDetail, idRange, wrapNotice, ELISION_DEFAULTS, type ElisionCall, type ElisionLimits, type CallAggregate, type CallElision, type StepElision } from './elide.js';
