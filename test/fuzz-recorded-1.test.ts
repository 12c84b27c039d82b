// Half 1 of the bounded recorded fuzz run of `npm test` (issue K §2): test/util/fuzz-recorded-suite.ts.
import { fuzzRecordedSuite } from './util/fuzz-recorded-suite.js';

fuzzRecordedSuite(0);
