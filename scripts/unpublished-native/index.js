throw new Error('@matrixai/quic has no native build for this platform (2.0.9 ships linux-x64 only)');
