/**
 * How many times the event loop turned (setImmediate callbacks ran) while `work` was pending: more than one
 * means the work ran off the JS thread, i.e. the event loop stayed free (the native kernels' promise).
 */
export async function eventLoopTurnsDuring(work: () => Promise<unknown>): Promise<number> {
  let ticks = 0;
  let done = false;
  const tick = (): void => {
    ticks++;
    if (!done) setImmediate(tick);
  };
  setImmediate(tick);
  try {
    await work();
  } finally {
    done = true;
  }
  return ticks;
}
