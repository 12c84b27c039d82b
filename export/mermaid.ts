// `ntflow export --format mermaid`: the session's sequence diagram (or one call's, --syscall) as
// Mermaid text. The diagram itself is viz/'s (viz/mermaid.ts); this adapter only opens the input
// and turns viz/'s user errors into the export's.
import { renderSequenceMermaid, sequenceInput, VizInputError, type SequenceInput } from '../viz/index.js';
import { ExportInputError, type Exporter } from './types.js';

export const exportMermaid: Exporter = (req, sink) => {
  let input: SequenceInput;
  try {
    // No registers: Mermaid has no tooltips to put them in, and time travel costs ~10 ms a step.
    input = sequenceInput(req.db, req.sessionId, { registerSteps: 0, ...(req.syscallId !== undefined ? { syscallIds: [req.syscallId] } : {}) });
  } catch (e) {
    if (e instanceof VizInputError) throw new ExportInputError(e.message);
    throw e;
  }
  const { text, items, notes } = renderSequenceMermaid(input);
  sink.write(text);
  return { format: 'mermaid', items, notes };
};
