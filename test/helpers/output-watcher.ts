import type { ChildProcess } from 'node:child_process';

export interface OutputWatcher {
  /** Everything the process wrote to stdout and stderr so far. */
  output(): string;
  /** Resolves with the first match of `pattern` in the output (already written or still to come). */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<string>;
}

/**
 * Collects a child's stdout + stderr and lets tests wait for a pattern in it; a wait fails at its timeout, or at
 * once when the process exits first, with the output so far in the message. `name` labels those messages.
 */
export function watchOutput(proc: ChildProcess, exited: Promise<unknown>, name: string): OutputWatcher {
  let text = '';
  const waiters: Array<{ pattern: RegExp; resolve: (match: string) => void }> = [];
  const onText = (chunk: Buffer) => {
    text += chunk.toString('utf8');
    for (const w of [...waiters]) {
      const m = w.pattern.exec(text);
      if (m) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(m[0]);
      }
    }
  };
  proc.stdout?.on('data', onText);
  proc.stderr?.on('data', onText);
  return {
    output: () => text,
    waitFor(pattern, timeoutMs = 10_000) {
      const m = pattern.exec(text);
      if (m) return Promise.resolve(m[0]);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`timed out waiting for ${pattern}; output so far:\n${text}`)),
          timeoutMs,
        );
        const waiter = {
          pattern,
          resolve: (match: string) => {
            clearTimeout(timer);
            resolve(match);
          },
        };
        waiters.push(waiter);
        void exited.then(() => {
          if (waiters.includes(waiter)) {
            clearTimeout(timer);
            reject(new Error(`${name} exited while waiting for ${pattern}; output:\n${text}`));
          }
        });
      });
    },
  };
}
