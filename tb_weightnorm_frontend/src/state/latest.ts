// One piece of data the tab shows, loaded for a key (the request's parameters).
// Only the answer to the newest request is kept: a slow answer to an older
// request (the user has since chosen another run) is dropped, never shown.

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export class Latest<T> {
  /** The key of what `value` and `error` are about ('' before any load). */
  key = '';
  value: T | null = null;
  error: string | null = null;
  /** The HTTP status of the last failure, when the server answered one. */
  status: number | null = null;
  private request = 0;
  private pending = false;

  /** True when `value` or `error` answers `key`. */
  has(key: string): boolean {
    return this.key === key && (this.value !== null || this.error !== null);
  }

  /**
   * Loads `key` unless it is already loaded (or `force`, e.g. after TensorBoard
   * reloaded). A new key forgets the old value at once, so nothing about
   * another run or layer stays on screen; a forced reload keeps it until the
   * answer comes. Resolves true when this call changed what is held.
   */
  async load(key: string, fetch: () => Promise<T>, force = false): Promise<boolean> {
    if (!force && (this.has(key) || (this.key === key && this.pending))) return false;
    if (key !== this.key) {
      this.key = key;
      this.value = null;
      this.error = null;
      this.status = null;
    }
    const request = ++this.request;
    this.pending = true;
    try {
      const value = await fetch();
      if (request !== this.request) return false;
      this.value = value;
      this.error = null;
      this.status = null;
    } catch (error) {
      if (request !== this.request) return false;
      this.error = message(error);
      const status = (error as {status?: unknown} | null | undefined)?.status;
      this.status = typeof status === 'number' ? status : null;
    } finally {
      if (request === this.request) this.pending = false;
    }
    return true;
  }

  /** Forgets everything; an answer still on its way is dropped. */
  reset(): void {
    this.request++;
    this.pending = false;
    this.key = '';
    this.value = null;
    this.error = null;
    this.status = null;
  }
}
