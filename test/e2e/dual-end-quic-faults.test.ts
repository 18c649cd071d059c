// The dual-end fault tests for pool type 1 (QUIC): garbage on the tunnel port, kill -9 of either end and recovery —
// the tests of dual-end.test.ts for type 1 alone (see dual-end-quic.test.ts for why they run from files of their own).
process.env.PORTHOLE_TEST_TYPES = '1';
process.env.PORTHOLE_TEST_PARTS = 'faults';
await import('./dual-end.test.js');
