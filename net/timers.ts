/**
 * Per-connection timers that cost no timer operation on the hot path.
 *
 * @module
 */

/**
 * Calls `onIdle` when `reset()` has not been called for `ms` milliseconds.
 * The timer is cleared by `clear()`; a timeout of 0 or less disables it.
 */
export class IdleTimer {
  #ms: number;
  #onIdle: () => void;
  #timer?: ReturnType<typeof setTimeout>;
  #last = 0;

  /** Starts the timer. */
  constructor(ms: number, onIdle: () => void) {
    this.#ms = ms;
    this.#onIdle = onIdle;
    this.reset();
  }

  /** Notes activity: the idle period starts again. */
  reset(): void {
    if (this.#ms <= 0) return;
    this.#last = performance.now();
    if (this.#timer === undefined) this.#arm(this.#ms);
  }

  // One timer per connection, re-armed only when it fires early: resetting costs no timer op.
  #arm(ms: number): void {
    this.#timer = setTimeout(() => {
      const idle = performance.now() - this.#last;
      if (idle >= this.#ms - 1) {
        this.#timer = undefined;
        this.#onIdle();
      } else {
        this.#arm(this.#ms - idle);
      }
    }, ms);
  }

  /** Stops the timer for good. */
  clear(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#ms = 0;
  }
}
