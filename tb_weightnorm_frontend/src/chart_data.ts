// Turns a series response into what the line chart draws. Pure.

import type {StatSeries, StatValue} from './data_client';

/** Stats that are magnitudes (never negative), drawn on a log scale when every value is > 0. */
const NORM_LIKE = new Set(['l1', 'l2', 'linf', 'ratio']);

export function isNormLike(stat: string): boolean {
  return NORM_LIKE.has(stat.slice(stat.lastIndexOf('/') + 1));
}

export interface ChartLine {
  variable: string;
  color: string;
  /** Finite values; null is a gap (not measured, or NaN/±Infinity, which cannot be drawn). */
  values: (number | null)[];
}

export interface ChartModel {
  stat: string;
  steps: number[];
  lines: ChartLine[];
  logScale: boolean;
  /** How many NaN/±Infinity values were left out as gaps. */
  nonFinite: number;
}

/** Log scale for norm-like stats when there is something to draw and all of it is > 0. */
export function useLogScale(stat: string, lines: readonly {values: readonly (number | null)[]}[]): boolean {
  if (!isNormLike(stat)) return false;
  let any = false;
  for (const line of lines) {
    for (const v of line.values) {
      if (v === null) continue;
      if (!(v > 0)) return false;
      any = true;
    }
  }
  return any;
}

function drawable(value: StatValue): number | null {
  return value !== null && Number.isFinite(value) ? value : null;
}

/**
 * One line per variable of `variables` that the response has, in that order.
 * `colorOf` gives each variable its colour.
 */
export function buildChartModel(
  series: StatSeries,
  variables: readonly string[],
  colorOf: (variable: string) => string,
): ChartModel {
  const byVariable = new Map(series.series.map((s) => [s.variable, s]));
  let nonFinite = 0;
  const lines: ChartLine[] = [];
  for (const variable of variables) {
    const s = byVariable.get(variable);
    if (!s) continue;
    const values = series.steps.map((_, i) => {
      const v = s.values[i] ?? null;
      if (v !== null && !Number.isFinite(v)) nonFinite++;
      return drawable(v);
    });
    lines.push({variable, color: colorOf(variable), values});
  }
  return {stat: series.stat, steps: series.steps, lines, logScale: useLogScale(series.stat, lines), nonFinite};
}
