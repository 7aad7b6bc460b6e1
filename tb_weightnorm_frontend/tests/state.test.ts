import {describe, expect, it} from 'vitest';
import type {RunInfo} from '../src/data_client';
import {
  chartVariables,
  currentRun,
  DEFAULT_CHART_VARIABLES,
  defaultStat,
  initialState,
  selectRun,
  selectStat,
  toggleVariable,
  withRuns,
} from '../src/state';

function run(name: string, stats: string[]): RunInfo {
  return {run: name, steps: 3, first_step: 1, last_step: 3, variables: 2, stats};
}

const ALL = ['weight/l2', 'gradient/l2', 'update/ratio'];
const a = run('a', ALL);
const b = run('b', ['weight/l1', 'weight/l2']);
const c = run('c', ['update/l2']);

describe('defaultStat', () => {
  it('prefers gradient/l2, then weight/l2, then the first stat', () => {
    expect(defaultStat(ALL)).toBe('gradient/l2');
    expect(defaultStat(['weight/l1', 'weight/l2'])).toBe('weight/l2');
    expect(defaultStat(['update/l2', 'update/ratio'])).toBe('update/l2');
    expect(defaultStat([])).toBeNull();
  });
});

describe('withRuns', () => {
  it('chooses the first run and its default stat on the first load', () => {
    const s = withRuns(initialState, [a, b]);
    expect(s.run).toBe('a');
    expect(s.stat).toBe('gradient/l2');
    expect(s.variables).toBeNull();
    expect(currentRun(s)).toBe(a);
  });

  it('has no run when there are no runs', () => {
    const s = withRuns(initialState, []);
    expect(s.run).toBeNull();
    expect(s.stat).toBeNull();
    expect(currentRun(s)).toBeNull();
  });

  it('keeps the chosen run, stat and variables on a reload', () => {
    let s = withRuns(initialState, [a, b]);
    s = selectRun(s, 'b');
    s = selectStat(s, 'weight/l1');
    s = toggleVariable(s, 'v1', ['v1', 'v2']);
    const reloaded = withRuns(s, [a, run('b', ['weight/l1', 'weight/l2', 'weight/linf'])]);
    expect(reloaded.run).toBe('b');
    expect(reloaded.stat).toBe('weight/l1');
    expect(reloaded.variables).toEqual(['v2']);
  });

  it('falls back to the first run when the chosen one is gone', () => {
    let s = withRuns(initialState, [a, b]);
    s = selectRun(s, 'b');
    s = toggleVariable(s, 'v1', ['v1']);
    const reloaded = withRuns(s, [a, c]);
    expect(reloaded.run).toBe('a');
    expect(reloaded.variables).toBeNull();
  });
});

describe('selectRun', () => {
  it('keeps the stat if the new run has it, else takes its default', () => {
    let s = withRuns(initialState, [a, b, c]);
    s = selectStat(s, 'weight/l2');
    expect(selectRun(s, 'b').stat).toBe('weight/l2');
    expect(selectRun(s, 'c').stat).toBe('update/l2');
  });

  it('resets the charted variables to the default', () => {
    let s = withRuns(initialState, [a, b]);
    s = toggleVariable(s, 'x', ['x', 'y']);
    expect(selectRun(s, 'b').variables).toBeNull();
  });

  it('ignores unknown runs and the current run', () => {
    const s = withRuns(initialState, [a, b]);
    expect(selectRun(s, 'zzz')).toBe(s);
    expect(selectRun(s, 'a')).toBe(s);
  });
});

describe('selectStat', () => {
  it('only takes stats of the current run', () => {
    const s = withRuns(initialState, [a]);
    expect(selectStat(s, 'update/ratio').stat).toBe('update/ratio');
    expect(selectStat(s, 'weight/l1')).toBe(s);
  });
});

describe('chart variables', () => {
  const many = Array.from({length: 20}, (_, i) => `v${i}`);

  it('default to all variables up to 12', () => {
    expect(chartVariables(initialState, ['x', 'y'])).toEqual(['x', 'y']);
    expect(DEFAULT_CHART_VARIABLES).toBe(12);
    expect(chartVariables(initialState, many)).toEqual(many.slice(0, 12));
  });

  it('toggle off and on, keeping the order of the run', () => {
    let s = toggleVariable(initialState, 'y', ['x', 'y', 'z']);
    expect(chartVariables(s, ['x', 'y', 'z'])).toEqual(['x', 'z']);
    s = toggleVariable(s, 'y', ['x', 'y', 'z']);
    expect(chartVariables(s, ['x', 'y', 'z'])).toEqual(['x', 'y', 'z']);
  });

  it('add a variable beyond the first 12', () => {
    const s = toggleVariable(initialState, 'v15', many);
    expect(chartVariables(s, many)).toEqual([...many.slice(0, 12), 'v15']);
  });

  it('can be emptied, and stay empty', () => {
    let s = toggleVariable(initialState, 'x', ['x']);
    expect(chartVariables(s, ['x'])).toEqual([]);
    s = withRuns(s, []);
    expect(s.variables).toBeNull();
  });

  it('follow a growing variable list while the user has not chosen', () => {
    expect(chartVariables(initialState, ['x', 'y', 'new'])).toEqual(['x', 'y', 'new']);
    const chosen = toggleVariable(initialState, 'x', ['x', 'y']);
    expect(chartVariables(chosen, ['x', 'y', 'new'])).toEqual(['y']);
  });

  it('do not change the previous state', () => {
    const before = toggleVariable(initialState, 'x', ['x', 'y']);
    const snapshot = JSON.stringify(before);
    toggleVariable(before, 'y', ['x', 'y']);
    expect(JSON.stringify(before)).toBe(snapshot);
  });
});
