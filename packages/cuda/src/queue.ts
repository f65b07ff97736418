/**
 * Calls on one device run one after another: each waits for the previous one's promise. Together with the
 * single stream per device this keeps uploads, kernels and downloads in program order.
 */
export class SerialQueue {
  private tail: Promise<unknown> = Promise.resolve();

  run<R>(task: () => Promise<R>): Promise<R> {
    const result = this.tail.then(task, task);
    this.tail = result.catch(() => undefined);
    return result;
  }
}

const queues = new Map<number, SerialQueue>();

/** The queue of a device (shared by every backend on it). */
export function deviceQueue(device: number): SerialQueue {
  let q = queues.get(device);
  if (!q) {
    q = new SerialQueue();
    queues.set(device, q);
  }
  return q;
}
