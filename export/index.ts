// export/ public API: a recorded session in the formats other tools open. The registry has one
// exporter per format; Mermaid's text is viz/'s sequence diagram (export/mermaid.ts adapts it).
import { exportChromeJson } from './chrome-json.js';
import { exportMermaid } from './mermaid.js';
import { exportPerfetto } from './perfetto.js';
import { exportSpeedscope } from './speedscope.js';
import type { ExportFormat, Exporter } from './types.js';

export { EXPORT_FORMATS, ExportInputError, type ExportFormat, type ExportRequest, type ExportSink, type ExportStats, type Exporter } from './types.js';
export { readTimeline, TS_UNIT, type Timeline, type TimelineEvent, type Slice, type ThreadInfo, type ProcessInfo, type FlowRef } from './model.js';
export { PERFETTO_PROTO, perfettoTraceType, trackUuid, SEQUENCE_ID, exportPerfetto } from './perfetto.js';
export { exportChromeJson, syscallLaneTid } from './chrome-json.js';
export { exportSpeedscope, SPEEDSCOPE_SCHEMA } from './speedscope.js';
export { exportMermaid } from './mermaid.js';

/** The exporters, by format. */
export const EXPORTERS: Record<ExportFormat, Exporter> = {
  perfetto: exportPerfetto,
  'chrome-json': exportChromeJson,
  speedscope: exportSpeedscope,
  mermaid: exportMermaid,
};

/** The file extension each format is usually saved with (for --help and the summary). */
export const EXPORT_EXTENSIONS: Record<ExportFormat, string> = {
  perfetto: '.perfetto-trace',
  'chrome-json': '.json',
  speedscope: '.speedscope.json',
  mermaid: '.mmd',
};
