// Turns a `compare` response (one stat, one layer's variables, several runs)
// into what a line chart draws. Pure.

import {colorAt} from '../ui/colors';
import type {Comparison, StatValue} from '../api/types';

/** Stats that are magnitudes (never negative), drawn on a log scale when every value is > 0. */
const NORM_LIKE = new Set(['l1', 'l2', 'linf', 'ratio', 'dist_init']);

export function isNormLike(stat: string): boolean {
  return NORM_LIKE.has(stat.slice(stat.lastIndexOf('/') + 1));
}

/** A value the chart draws: a number, null for a gap, undefined where the run did not log that step. */
export type ChartValue = number | null | undefined;

export interface ChartLine {
  run: string;
  variable: string;
  /** What the legend says. */
  label: string;
  color: string;
  /** uPlot's dash pattern: the run sets the colour, the variable the dash. */
  dash: number[];
  values: ChartValue[];
}

export interface ChartModel {
  stat: string;
  /** The union of the runs' logged steps, ascending. */
  steps: number[];
  lines: ChartLine[];
  logScale: boolean;
  /** How many NaN/±Infinity values were left out as gaps. */
  nonFinite: number;
}

/** Dashes told apart at a glance, for the variables of one layer (kernel solid). */
const DASHES: readonly number[][] = [[], [6, 4], [2, 3], [10, 3, 2, 3], [1, 6]];

export function dashAt(index: number): number[] {
  return DASHES[index % DASHES.length];
}

/** Log scale for norm-like stats when there is something to draw and all of it is > 0. */
export function useLogScale(stat: string, lines: readonly {values: readonly ChartValue[]}[]): boolean {
  if (!isNormLike(stat)) return false;
  let any = false;
  for (const line of lines) {
    for (const v of line.values) {
      if (v === null || v === undefined) continue;
      if (!(v > 0)) return false;
      any = true;
    }
  }
  return any;
}

/** "dense_1/kernel" from "model/dense_1/kernel": the model's name is the same on every line. */
export function shortVariable(variable: string): string {
  const parts = variable.split('/');
  return parts.length > 2 ? parts.slice(-2).join('/') : variable;
}

function sortedUnion(lists: readonly number[][]): number[] {
  const all = new Set<number>();
  for (const list of lists) for (const step of list) all.add(step);
  return [...all].sort((a, b) => a - b);
}

/**
 * One line per (run, variable), runs in the response's order. The runs may have
 * logged different steps: each line has a value at every step of the union,
 * `undefined` where its run logged nothing (the chart joins across those) and
 * null where a logged value cannot be drawn (a real gap). Several runs: the run
 * sets the colour and the variable the dash.
 */
export function buildCompareModel(comparison: Comparison, runColor: (run: string) => string): ChartModel {
  const runs = comparison.runs.filter((r) => r.statLogged);
  const steps = sortedUnion(runs.map((r) => r.steps));
  const column = new Map(steps.map((step, i) => [step, i]));
  const variableIndex = new Map<string, number>();
  const several = runs.length > 1;
  let nonFinite = 0;
  const lines: ChartLine[] = [];
  for (const run of runs) {
    for (const series of run.series) {
      if (!variableIndex.has(series.variable)) variableIndex.set(series.variable, variableIndex.size);
      const values: ChartValue[] = new Array(steps.length).fill(undefined);
      run.steps.forEach((step, i) => {
        const v: StatValue = series.values[i] ?? null;
        if (v !== null && !Number.isFinite(v)) nonFinite++;
        values[column.get(step)!] = v !== null && Number.isFinite(v) ? v : null;
      });
      const name = shortVariable(series.variable);
      lines.push({
        run: run.run,
        variable: series.variable,
        label: several ? `${run.run} \u00b7 ${name}` : name,
        // One run: tell its variables apart by colour; several: the colour is the run's.
        color: several ? runColor(run.run) : colorAt(variableIndex.get(series.variable)!),
        dash: dashAt(variableIndex.get(series.variable)!),
        values,
      });
    }
  }
  return {stat: comparison.stat, steps, lines, logScale: useLogScale(comparison.stat, lines), nonFinite};
}
