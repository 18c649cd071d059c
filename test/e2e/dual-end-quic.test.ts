// The dual-end matrix (modes × tls × TCP/UDP, sha256 integrity) for pool type 1 (QUIC): the tests of
// dual-end.test.ts, run for type 1 alone in files of their own so that each stays within the runner's 120 s per file
// (the fault tests are in dual-end-quic-faults.test.ts). Skipped, saying why, when @matrixai/quic cannot load.
process.env.PORTHOLE_TEST_TYPES = '1';
process.env.PORTHOLE_TEST_PARTS = 'matrix';
await import('./dual-end.test.js');
