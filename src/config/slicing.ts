import { performance } from 'node:perf_hooks';

/** How long work spread over the event loop runs before it gives way. */
export const SLICE_MS = 5;

/** Lets the event loop run (I/O, timers, other requests) before going on. */
export function yieldToLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Runs stepped work to its end at once. */
export function runAtOnce<T>(steps: Generator<void, T>): T {
  for (;;) {
    const step = steps.next();
    if (step.done === true) return step.value;
  }
}

/**
 * Runs stepped work spread over the event loop: it gives way whenever it has
 * run for `sliceMs`, so requests keep flowing while thousands of objects are
 * checked or built. Each yield of `steps` is a point where it may pause.
 */
export async function runSliced<T>(steps: Generator<void, T>, sliceMs = SLICE_MS): Promise<T> {
  let sliceStart = performance.now();
  for (;;) {
    const step = steps.next();
    if (step.done === true) return step.value;
    if (performance.now() - sliceStart >= sliceMs) {
      await yieldToLoop();
      sliceStart = performance.now();
    }
  }
}
