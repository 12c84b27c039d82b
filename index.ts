// ntflow's library API: the machine and its guest (core), recording (recorder). The CLI
// (bin/ntflow) is built on exactly these.
export * from './core/index.js';
export { SCENARIOS, findScenario, scenarioOptions, scenarioSource, type Scenario } from './core/guest/scenarios.js';
export * from './recorder/index.js';
