// ntflow's library API: the machine and its guest (core), recording (recorder). The CLI
// (bin/ntflow) is built on exactly these.
export * from './core/index.js';
export * from './recorder/index.js';
