// What the user has chosen: run, stat and the variables in the chart.
// Pure functions only; each returns a new state.

import type {RunInfo} from './data_client';

/** How many variables the chart shows before the user picks any. */
export const DEFAULT_CHART_VARIABLES = 12;

export interface State {
  runs: RunInfo[];
  run: string | null;
  stat: string | null;
  /**
   * The variables in the chart; null until the user toggles one, meaning the
   * default choice, which follows the run's variable list as it grows.
   */
  variables: string[] | null;
}

export const initialState: State = {runs: [], run: null, stat: null, variables: null};

/** gradient/l2 if the run has it, else weight/l2, else its first stat. */
export function defaultStat(stats: readonly string[]): string | null {
  for (const preferred of ['gradient/l2', 'weight/l2']) {
    if (stats.includes(preferred)) return preferred;
  }
  return stats[0] ?? null;
}

export function currentRun(state: State): RunInfo | null {
  return state.runs.find((r) => r.run === state.run) ?? null;
}

function statFor(run: RunInfo | null, stat: string | null): string | null {
  if (!run) return null;
  if (stat !== null && run.stats.includes(stat)) return stat;
  return defaultStat(run.stats);
}

/**
 * A new list of runs (first load or a reload): keeps the chosen run, stat and
 * variables while the run still exists, else falls back to the first run.
 */
export function withRuns(state: State, runs: RunInfo[]): State {
  const kept = runs.find((r) => r.run === state.run);
  if (kept) return {...state, runs, stat: statFor(kept, state.stat)};
  const first = runs[0] ?? null;
  return {runs, run: first?.run ?? null, stat: statFor(first, state.stat), variables: null};
}

/** Chooses another run; the stat is kept if that run has it, the variables go back to the default. */
export function selectRun(state: State, run: string): State {
  if (run === state.run) return state;
  const info = state.runs.find((r) => r.run === run);
  if (!info) return state;
  return {...state, run, stat: statFor(info, state.stat), variables: null};
}

export function selectStat(state: State, stat: string): State {
  const info = currentRun(state);
  if (!info || !info.stats.includes(stat) || stat === state.stat) return state;
  return {...state, stat};
}

/** The variables in the chart, in the order of `all` (the run's variables). */
export function chartVariables(state: State, all: readonly string[]): string[] {
  if (state.variables === null) return all.slice(0, DEFAULT_CHART_VARIABLES);
  const chosen = new Set(state.variables);
  return all.filter((v) => chosen.has(v));
}

/** Adds `variable` to the chart, or removes it if it is there. */
export function toggleVariable(state: State, variable: string, all: readonly string[]): State {
  const shown = chartVariables(state, all);
  const variables = shown.includes(variable)
    ? shown.filter((v) => v !== variable)
    : all.filter((v) => v === variable || shown.includes(v));
  return {...state, variables};
}

/** Charts exactly `variables` (those the run has), e.g. the ones a finding is about. */
export function chartOnly(state: State, variables: readonly string[], all: readonly string[]): State {
  const chosen = new Set(variables);
  return {...state, variables: all.filter((v) => chosen.has(v))};
}
