// diff/ public API: two sessions compared — calls aligned, instruction paths walked side by side,
// what differs in outcome — and the text `ntflow diff` prints.
export { diffSessions, type DiffResult, type DiffSide, type PairInfo, type CallInfo, type Divergence, type Difference, type PathPoint, type SideInfo } from './diff.js';
export { formatDiff } from './format.js';
export { alignCalls, type AlignCall } from './align.js';
export { compareStreams, JOIN_RUN } from './streams.js';
