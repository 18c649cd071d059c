// The dual-end fault tests per pool transport (garbage on the tunnel port, kill -9 of either end and recovery) for
// types 0, 2 and 3: the tests of dual-end.test.ts, run from a file of their own so that each file stays within the
// runner's 120 s per file (type 1 has dual-end-quic-faults.test.ts).
process.env.PORTHOLE_TEST_PARTS = 'faults';
await import('./dual-end.test.js');
