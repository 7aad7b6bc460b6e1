import {describe, expect, it} from 'vitest';
import {formatExact, formatNumber, INFINITY, isNonFinite, MISSING} from '../../src/ui/format';

describe('formatNumber', () => {
  it('shows three significant digits in the plain range', () => {
    expect(formatNumber(1.23456)).toBe('1.23');
    expect(formatNumber(0.0123456)).toBe('0.0123');
    expect(formatNumber(123.456)).toBe('123');
    expect(formatNumber(1234.56)).toBe('1230');
    expect(formatNumber(-0.5)).toBe('-0.5');
    expect(formatNumber(0.001)).toBe('0.001');
  });

  it('uses an exponent for very small and very large values', () => {
    expect(formatNumber(0.000123456)).toBe('1.23e-4');
    expect(formatNumber(1.2e-7)).toBe('1.2e-7');
    expect(formatNumber(-4.56789e-12)).toBe('-4.57e-12');
    expect(formatNumber(12345.6)).toBe('1.23e4');
    expect(formatNumber(1e20)).toBe('1e20');
    expect(formatNumber(1e6)).toBe('1e6');
  });

  it('decides on the rounded value', () => {
    expect(formatNumber(0.00099999)).toBe('0.001');
    expect(formatNumber(9999.9)).toBe('1e4');
  });

  it('writes whole numbers below a million out (counts, steps)', () => {
    expect(formatNumber(0)).toBe('0');
    expect(formatNumber(-0)).toBe('0');
    expect(formatNumber(42)).toBe('42');
    expect(formatNumber(12345)).toBe('12345');
  });

  it('spells out non-finite values and shows null as a dash', () => {
    expect(formatNumber(NaN)).toBe('NaN');
    expect(formatNumber(Infinity)).toBe(INFINITY);
    expect(formatNumber(-Infinity)).toBe('-' + INFINITY);
    expect(formatNumber(null)).toBe(MISSING);
    expect(MISSING).toBe('\u2014');
  });

  it('takes another number of digits', () => {
    expect(formatNumber(Math.PI, 5)).toBe('3.1416');
    expect(formatNumber(Math.PI, 1)).toBe('3');
  });
});

describe('isNonFinite', () => {
  it('is true for NaN and infinities only', () => {
    expect(isNonFinite(NaN)).toBe(true);
    expect(isNonFinite(Infinity)).toBe(true);
    expect(isNonFinite(-Infinity)).toBe(true);
    expect(isNonFinite(0)).toBe(false);
    expect(isNonFinite(1e308)).toBe(false);
    expect(isNonFinite(null)).toBe(false);
  });
});

describe('formatExact', () => {
  it('gives the full value for tooltips', () => {
    expect(formatExact(0.123456789)).toBe('0.123456789');
    expect(formatExact(null)).toBe('not measured');
  });
});
