import {describe, expect, it} from 'vitest';
import {Latest} from '../../src/state/latest';

/** A request the test answers by hand, to put answers in any order. */
function deferred<T>() {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return {promise, resolve, reject};
}

/** An error as the data client throws for an HTTP failure. */
function httpError(message: string, status: number): Error {
  return Object.assign(new Error(message), {status});
}

describe('Latest', () => {
  it('holds nothing before a load', () => {
    const latest = new Latest<string>();
    expect(latest).toMatchObject({key: '', value: null, error: null, status: null});
    expect(latest.has('')).toBe(false);
  });

  it('stores the value of a load', async () => {
    const latest = new Latest<string>();
    await expect(latest.load('a', async () => 'A')).resolves.toBe(true);
    expect(latest).toMatchObject({key: 'a', value: 'A', error: null, status: null});
    expect(latest.has('a')).toBe(true);
    expect(latest.has('b')).toBe(false);
  });

  it("stores a failure's message and HTTP status", async () => {
    const latest = new Latest<string>();
    await expect(latest.load('a', () => Promise.reject(httpError('no such run', 404)))).resolves.toBe(true);
    expect(latest).toMatchObject({key: 'a', value: null, error: 'no such run', status: 404});
    expect(latest.has('a')).toBe(true);
  });

  it('stores a failure without a status, or not even an Error', async () => {
    const latest = new Latest<string>();
    await latest.load('a', () => Promise.reject(new Error('offline')));
    expect(latest).toMatchObject({error: 'offline', status: null});
    await latest.load('b', () => Promise.reject('plain text'));
    expect(latest).toMatchObject({error: 'plain text', status: null});
    await latest.load('c', () => Promise.reject(undefined));
    expect(latest).toMatchObject({key: 'c', error: 'undefined', status: null});
    await latest.load('d', () => Promise.reject(null));
    expect(latest).toMatchObject({key: 'd', error: 'null', status: null});
  });

  it('does not load the same key again, held or on its way, unless forced', async () => {
    const latest = new Latest<string>();
    let calls = 0;
    const fetch = async () => `A${++calls}`;
    await latest.load('a', fetch);
    await expect(latest.load('a', fetch)).resolves.toBe(false);
    expect(calls).toBe(1);

    await expect(latest.load('a', fetch, true)).resolves.toBe(true);
    expect(calls).toBe(2);
    expect(latest.value).toBe('A2');

    const slow = deferred<string>();
    const first = latest.load('b', () => slow.promise);
    await expect(latest.load('b', fetch)).resolves.toBe(false);
    slow.resolve('B');
    await expect(first).resolves.toBe(true);
    expect(calls).toBe(2);
  });

  it('does not retry a failed key unless forced', async () => {
    const latest = new Latest<string>();
    await latest.load('a', () => Promise.reject(new Error('down')));
    await expect(latest.load('a', async () => 'A')).resolves.toBe(false);
    expect(latest.error).toBe('down');
    await expect(latest.load('a', async () => 'A', true)).resolves.toBe(true);
    expect(latest).toMatchObject({value: 'A', error: null, status: null});
  });

  it('forgets the old value at once when a new key is loaded', async () => {
    const latest = new Latest<string>();
    await latest.load('a', () => Promise.reject(httpError('gone', 404)));
    const pending = deferred<string>();
    const loading = latest.load('b', () => pending.promise);
    // Before the answer: nothing about run a is left to show.
    expect(latest).toMatchObject({key: 'b', value: null, error: null, status: null});
    expect(latest.has('b')).toBe(false);
    pending.resolve('B');
    await loading;
    expect(latest.value).toBe('B');
  });

  it('keeps the value during a forced reload of the same key until the answer comes', async () => {
    const latest = new Latest<string>();
    await latest.load('a', async () => 'old');
    const pending = deferred<string>();
    const loading = latest.load('a', () => pending.promise, true);
    expect(latest.value).toBe('old');
    pending.resolve('new');
    await loading;
    expect(latest.value).toBe('new');
  });

  it('drops a slow answer to an older request that comes after the newer one', async () => {
    const latest = new Latest<string>();
    const older = deferred<string>();
    const newer = deferred<string>();
    const first = latest.load('a', () => older.promise);
    const second = latest.load('b', () => newer.promise);
    newer.resolve('B');
    await expect(second).resolves.toBe(true);
    older.resolve('A');
    await expect(first).resolves.toBe(false);
    expect(latest).toMatchObject({key: 'b', value: 'B', error: null});
  });

  it('drops a late failure of an older request too', async () => {
    const latest = new Latest<string>();
    const older = deferred<string>();
    const first = latest.load('a', () => older.promise);
    await latest.load('b', async () => 'B');
    older.reject(httpError('timeout', 504));
    await expect(first).resolves.toBe(false);
    expect(latest).toMatchObject({key: 'b', value: 'B', error: null, status: null});
  });

  it('drops a late answer to an older forced reload of the same key', async () => {
    const latest = new Latest<string>();
    const older = deferred<string>();
    const first = latest.load('a', () => older.promise);
    await latest.load('a', async () => 'newer', true);
    older.resolve('older');
    await expect(first).resolves.toBe(false);
    expect(latest.value).toBe('newer');
  });

  it('forgets everything on reset and drops the answer still on its way', async () => {
    const latest = new Latest<string>();
    await latest.load('a', async () => 'A');
    const pending = deferred<string>();
    const loading = latest.load('b', () => pending.promise);
    latest.reset();
    expect(latest).toMatchObject({key: '', value: null, error: null, status: null});
    pending.resolve('B');
    await expect(loading).resolves.toBe(false);
    expect(latest.value).toBeNull();
    // The key is no longer on its way: loading it again asks again.
    await expect(latest.load('b', async () => 'B2')).resolves.toBe(true);
    expect(latest.value).toBe('B2');
  });
});
