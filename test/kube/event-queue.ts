// Collects asynchronous callbacks (watch events, informer notifications) so a test can
// await them in order, failing with what did arrive when the expected one does not.

export class EventQueue<T> {
  private readonly items: T[] = [];
  private waiter: (() => void) | undefined;

  readonly push = (item: T): void => {
    this.items.push(item);
    this.waiter?.();
  };

  async next(timeoutMs = 5000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    while (this.items.length === 0) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no event within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiter = () => { clearTimeout(timer); resolve(); };
      });
      this.waiter = undefined;
    }
    return this.items.shift()!;
  }

  /** Events that arrived and were not taken, for asserting that nothing else happened. */
  pending(): T[] {
    return [...this.items];
  }
}
