// Number formatting for the table, the legend and the axes. Pure.

import type {StatValue} from '../api/types';

export const MISSING = '\u2014'; // em dash: the stat was not measured
export const INFINITY = '\u221e';

/** True for NaN and ±Infinity (not for null). */
export function isNonFinite(value: StatValue): boolean {
  return typeof value === 'number' && !Number.isFinite(value);
}

/** Exponent notation without trailing zeros or "+": 1.2e-7, 1e6. */
function exponential(value: number, digits: number): string {
  const [mantissa, exponent] = value.toExponential(digits - 1).split('e');
  const trimmed = mantissa.includes('.') ? mantissa.replace(/\.?0+$/, '') : mantissa;
  return `${trimmed}e${exponent.replace('+', '')}`;
}

/**
 * Formats a stat value with `digits` significant digits: plain notation from
 * 0.001 up to 10000, exponent notation outside; whole numbers below a million
 * (counts, steps) are written out. NaN and infinities are spelt out so they
 * stand out; null (not measured) is an em dash.
 */
export function formatNumber(value: StatValue, digits = 3): string {
  if (value === null) return MISSING;
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return INFINITY;
  if (value === -Infinity) return '-' + INFINITY;
  if (value === 0) return '0'; // also -0
  if (Number.isInteger(value) && Math.abs(value) < 1e6) return String(value);
  const rounded = Number(value.toPrecision(digits));
  const magnitude = Math.abs(rounded);
  if (magnitude < 1e-3 || magnitude >= 1e4) return exponential(value, digits);
  return String(rounded);
}

/** The full value, for a tooltip. */
export function formatExact(value: StatValue): string {
  if (value === null) return 'not measured';
  return String(value);
}
