/** Length of the window a retry budget counts over. */
const WINDOW_MS = 10_000;
/** The window is kept as this many slots, so old counts fall out a second at a time. */
const SLOTS = 10;
const SLOT_MS = WINDOW_MS / SLOTS;

/** Settings of a service's retry budget. */
export interface BudgetSpec {
  /** Retries allowed as a share of requests over the window. */
  readonly percent: number;
  /** Retries always allowed at the same time, however few requests there were. */
  readonly minConcurrent: number;
}

/**
 * Caps retries of one service to a share of its requests over the last 10 s,
 * always allowing a few at a time, so a dying region cannot cause a retry storm.
 * Kept outside the routing table: a table swap does not reset it.
 */
export class RetryBudget {
  readonly #requests = new Float64Array(SLOTS);
  readonly #retries = new Float64Array(SLOTS);
  #slot = 0;
  #slotStart = 0;
  /** Retries in flight now. */
  active = 0;

  /** Counts one request. */
  recordRequest(now: number): void {
    this.#advance(now);
    this.#requests[this.#slot] = (this.#requests[this.#slot] as number) + 1;
  }

  /** Takes a retry from the budget when there is one; release() it when the retry ends. */
  tryAcquire(spec: BudgetSpec, now: number): boolean {
    this.#advance(now);
    let requests = 0;
    let retries = 0;
    for (let i = 0; i < SLOTS; i++) {
      requests += this.#requests[i] as number;
      retries += this.#retries[i] as number;
    }
    if (this.active >= spec.minConcurrent && retries + 1 > (requests * spec.percent) / 100) return false;
    this.#retries[this.#slot] = (this.#retries[this.#slot] as number) + 1;
    this.active++;
    return true;
  }

  /** A retry taken with tryAcquire() has ended. */
  release(): void {
    this.active--;
  }

  #advance(now: number): void {
    if (now - this.#slotStart < SLOT_MS) return;
    const steps = Math.min(SLOTS, Math.floor((now - this.#slotStart) / SLOT_MS));
    for (let i = 0; i < steps; i++) {
      this.#slot = (this.#slot + 1) % SLOTS;
      this.#requests[this.#slot] = 0;
      this.#retries[this.#slot] = 0;
    }
    this.#slotStart = steps === SLOTS ? now : this.#slotStart + steps * SLOT_MS;
  }
}
