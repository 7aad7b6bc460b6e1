import {describe, expect, it} from 'vitest';
import {
  currentRun,
  defaultStat,
  filterTable,
  initialState,
  MAX_OVERLAID_RUNS,
  offeredRuns,
  openLayer,
  overlaidRuns,
  selectHistogramKind,
  selectHistogramMode,
  selectHistogramVariable,
  selectRun,
  selectSnapshots,
  selectStat,
  selectStep,
  showOverview,
  sortTable,
  toggleRun,
  withRuns,
  type State,
} from '../../src/state/state';
import {runInfo} from '../fixtures';

/** Freezes the state and everything in it: a function that mutated its input would throw. */
function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const inner of Object.values(value)) deepFreeze(inner);
  }
  return value;
}

const a = runInfo('a', {stats: ['weight/l2', 'gradient/l2', 'update/ratio'], layers: ['conv1', 'dense']});
const b = runInfo('b', {stats: ['weight/l1', 'weight/l2'], layers: ['conv1']});
const c = runInfo('c', {stats: ['update/l2'], layers: []});

/** A frozen state: the initial one with `fields` changed. */
function state(fields: Partial<State> = {}): State {
  return deepFreeze({...initialState, ...fields});
}

describe('defaultStat', () => {
  it('prefers gradient/l2, then weight/l2, then the first stat', () => {
    expect(defaultStat(['weight/l2', 'update/ratio', 'gradient/l2'])).toBe('gradient/l2');
    expect(defaultStat(['weight/l1', 'weight/l2'])).toBe('weight/l2');
    expect(defaultStat(['update/l2', 'update/ratio'])).toBe('update/l2');
  });

  it('is null for a run without stats', () => {
    expect(defaultStat([])).toBeNull();
  });
});

describe('offeredRuns', () => {
  it('follows the order of TensorBoard run list', () => {
    expect(offeredRuns([a, b, c], ['c', 'a', 'b']).map((r) => r.run)).toEqual(['c', 'a', 'b']);
  });

  it('leaves out runs TensorBoard does not offer and names without our data', () => {
    expect(offeredRuns([a, b, c], ['b', 'other', 'a'])).toEqual([b, a]);
  });

  it('offers all runs with data while none of the host list has any (TensorBoard still loading)', () => {
    expect(offeredRuns([a, b], [])).toEqual([a, b]);
    expect(offeredRuns([a, b], ['other'])).toEqual([a, b]);
  });

  it('offers every run with data, in server order, outside TensorBoard (no host list)', () => {
    const withData = deepFreeze([b, a]);
    const offered = offeredRuns(withData, null);
    expect(offered).toEqual([b, a]);
    expect(offered).not.toBe(withData);
  });
});

describe('withRuns', () => {
  it('chooses the first run and its default stat on the first load', () => {
    const s = withRuns(state(), [b, a]);
    expect(s.runs).toEqual([b, a]);
    expect(s.run).toBe('b');
    expect(s.stat).toBe('weight/l2');
    expect(currentRun(s)).toBe(b);
  });

  it('keeps the run, its stat and the step while the run still exists', () => {
    const s = withRuns(state({runs: [a, b], run: 'b', stat: 'weight/l1', step: 7}), [a, runInfo('d'), b]);
    expect(s).toMatchObject({run: 'b', stat: 'weight/l1', step: 7});
    expect(s.runs.map((r) => r.run)).toEqual(['a', 'd', 'b']);
  });

  it('falls back to the default stat when the kept run no longer logs the chosen one', () => {
    const s = withRuns(state({runs: [a], run: 'a', stat: 'update/ratio', step: 7}), [runInfo('a', {stats: ['weight/l2']})]);
    expect(s).toMatchObject({run: 'a', stat: 'weight/l2', step: 7});
  });

  it('falls back to the first run and the latest step when the run is gone', () => {
    const s = withRuns(state({runs: [a, b], run: 'b', stat: 'weight/l1', step: 7}), [a, c]);
    expect(s).toMatchObject({run: 'a', stat: 'gradient/l2', step: null});
  });

  it('keeps the chosen stat across the fallback when the first run has it', () => {
    const s = withRuns(state({runs: [b], run: 'b', stat: 'weight/l2'}), [a]);
    expect(s).toMatchObject({run: 'a', stat: 'weight/l2'});
  });

  it('has no run and no stat when there are no runs', () => {
    const s = withRuns(state({runs: [a], run: 'a', stat: 'gradient/l2', step: 3}), []);
    expect(s).toMatchObject({runs: [], run: null, stat: null, step: null});
    expect(currentRun(s)).toBeNull();
  });
});

describe('selectRun', () => {
  const base = state({runs: [a, b, c], run: 'a', stat: 'weight/l2', step: 5});

  it('keeps the stat when the new run has it and goes back to the latest step', () => {
    expect(selectRun(base, 'b')).toMatchObject({run: 'b', stat: 'weight/l2', step: null});
  });

  it("takes the new run's default stat when it does not have the chosen one", () => {
    expect(selectRun(base, 'c')).toMatchObject({run: 'c', stat: 'update/l2', step: null});
  });

  it('ignores unknown runs and the run already chosen', () => {
    expect(selectRun(base, 'nope')).toBe(base);
    expect(selectRun(base, 'a')).toBe(base);
  });
});

describe('selectSnapshots', () => {
  const base = state({runs: [a, b, c], run: 'a'});

  it('chooses the two epochs, and a new run goes back to its first and last', () => {
    const picked = selectSnapshots(base, 2, 5);
    expect(picked).toMatchObject({snapshotFrom: 2, snapshotTo: 5});
    expect(selectSnapshots(picked, 2, 5)).toBe(picked);
    expect(selectRun(picked, 'b')).toMatchObject({snapshotFrom: null, snapshotTo: null});
    expect(withRuns(picked, [a, b])).toMatchObject({snapshotFrom: 2, snapshotTo: 5});
    expect(withRuns(picked, [b])).toMatchObject({run: 'b', snapshotFrom: null, snapshotTo: null});
  });
});

describe('selectStat', () => {
  const base = state({runs: [a, b], run: 'a', stat: 'gradient/l2'});

  it('chooses a stat of the current run', () => {
    expect(selectStat(base, 'update/ratio').stat).toBe('update/ratio');
  });

  it('ignores a stat the run does not log, the same stat, and having no run', () => {
    expect(selectStat(base, 'weight/l1')).toBe(base);
    expect(selectStat(base, 'gradient/l2')).toBe(base);
    const empty = state();
    expect(selectStat(empty, 'weight/l2')).toBe(empty);
  });
});

describe('openLayer and showOverview', () => {
  const base = state({runs: [a], run: 'a', step: 5, histogramVariable: 'conv1/kernel', layer: 'conv1'});

  it('opens the layer view at the given step', () => {
    expect(openLayer(base, 'dense', 9)).toMatchObject({view: 'layer', layer: 'dense', step: 9});
    expect(openLayer(base, 'dense', null).step).toBeNull();
  });

  it('keeps the step when none is given', () => {
    expect(openLayer(base, 'dense').step).toBe(5);
  });

  it('resets the histogram variable only when the layer changes', () => {
    expect(openLayer(base, 'dense').histogramVariable).toBeNull();
    expect(openLayer(base, 'conv1').histogramVariable).toBe('conv1/kernel');
  });

  it('changes nothing when the open layer is opened again', () => {
    const opened = openLayer(base, 'conv1');
    expect(openLayer(opened, 'conv1')).toEqual(opened);
  });

  it('goes back to the overview and keeps the layer for the next visit', () => {
    const opened = openLayer(base, 'dense');
    const overview = showOverview(opened);
    expect(overview).toMatchObject({view: 'overview', layer: 'dense'});
    expect(showOverview(overview)).toBe(overview);
  });
});

describe('selectStep', () => {
  it('chooses a step or the latest (null)', () => {
    const s = selectStep(state(), 12);
    expect(s.step).toBe(12);
    expect(selectStep(s, null).step).toBeNull();
    expect(selectStep(s, 12)).toBe(s);
  });
});

describe('toggleRun', () => {
  const runs = () => ['a', 'b', 'c'].map((name) => runInfo(name, {layers: ['l']}));

  it('hides a run and shows it again', () => {
    const s = state({runs: runs(), run: 'a', layer: 'l', hiddenRuns: ['x']});
    const hidden = toggleRun(s, 'b');
    expect(hidden.hiddenRuns).toEqual(['x', 'b']);
    expect(overlaidRuns(hidden)).toEqual(['a', 'c']);
    expect(overlaidRuns(toggleRun(hidden, 'b'))).toEqual(['a', 'b', 'c']);
    expect(toggleRun(hidden, 'b').hiddenRuns).not.toContain('b');
  });

  it("never hides the overview's run", () => {
    const s = state({runs: runs(), run: 'a', layer: 'l'});
    expect(toggleRun(s, 'a')).toBe(s);
    expect(overlaidRuns(state({runs: runs(), run: 'a', layer: 'l', hiddenRuns: ['a']}))[0]).toBe('a');
  });
});

describe('overlaidRuns', () => {
  const layered = (name: string, layers: string[]) => runInfo(name, {layers});

  it('puts the overview run first, then the others in TensorBoard order', () => {
    const s = state({runs: [layered('x', ['l']), layered('y', ['l']), layered('z', ['l'])], run: 'y', layer: 'l'});
    expect(overlaidRuns(s)).toEqual(['y', 'x', 'z']);
  });

  it('overlays only runs that have the layer; a run that lists no layers counts as having it', () => {
    const s = state({runs: [layered('x', ['l']), layered('y', ['other']), layered('z', [])], run: 'x', layer: 'l'});
    expect(overlaidRuns(s)).toEqual(['x', 'z']);
  });

  it('leaves out the runs the user hid', () => {
    const s = state({runs: [layered('x', ['l']), layered('y', ['l']), layered('z', ['l'])], run: 'x', layer: 'l', hiddenRuns: ['y']});
    expect(overlaidRuns(s)).toEqual(['x', 'z']);
  });

  it('does not put the overview run first when it lacks the layer', () => {
    const s = state({runs: [layered('x', ['l']), layered('y', ['other']), layered('z', ['l'])], run: 'y', layer: 'l'});
    expect(overlaidRuns(s)).toEqual(['x', 'z']);
  });

  it('overlays nothing without a layer', () => {
    expect(overlaidRuns(state({runs: [layered('x', [])], run: 'x'}))).toEqual([]);
  });

  it(`overlays at most ${MAX_OVERLAID_RUNS} runs, the overview run among them`, () => {
    const runs = Array.from({length: MAX_OVERLAID_RUNS + 3}, (_, i) => layered(`r${i}`, ['l']));
    const last = `r${MAX_OVERLAID_RUNS + 2}`;
    const overlaid = overlaidRuns(state({runs, run: last, layer: 'l'}));
    expect(overlaid).toHaveLength(MAX_OVERLAID_RUNS);
    expect(overlaid[0]).toBe(last);
    expect(overlaid.slice(1)).toEqual(runs.slice(0, MAX_OVERLAID_RUNS - 1).map((r) => r.run));
  });

  // Known bug (see the report): a run beyond the cap is offered as "Overlay this run",
  // but toggleRun only adds it to hiddenRuns, so clicking it never shows it.
  it('overlays a run left out by the cap once the user clicks it, in place of the last one', () => {
    const runs = Array.from({length: MAX_OVERLAID_RUNS + 2}, (_, i) => layered(`r${i}`, ['l']));
    const extra = `r${MAX_OVERLAID_RUNS + 1}`;
    const s = state({runs, run: 'r0', layer: 'l'});
    expect(overlaidRuns(s)).not.toContain(extra);
    const shown = overlaidRuns(toggleRun(s, extra));
    expect(shown).toContain(extra);
    expect(shown).toHaveLength(MAX_OVERLAID_RUNS);
    expect(shown).not.toContain(`r${MAX_OVERLAID_RUNS - 1}`);
    expect(shown[0]).toBe('r0');
  });
});

describe('histogram choices', () => {
  it('sets the kind, the mode and the variable, and returns the same state when unchanged', () => {
    const s = state();
    const kind = selectHistogramKind(s, 'weight');
    expect(kind.histogramKind).toBe('weight');
    expect(selectHistogramKind(kind, 'weight')).toBe(kind);

    const mode = selectHistogramMode(s, 'overlay');
    expect(mode.histogramMode).toBe('overlay');
    expect(selectHistogramMode(mode, 'overlay')).toBe(mode);

    const variable = selectHistogramVariable(s, 'conv1/bias');
    expect(variable.histogramVariable).toBe('conv1/bias');
    expect(selectHistogramVariable(variable, 'conv1/bias')).toBe(variable);
  });
});

describe('sortTable and filterTable', () => {
  it('sorts names ascending and stats descending first', () => {
    expect(sortTable(state(), 'layer')).toMatchObject({tableSort: 'layer', tableDescending: false});
    expect(sortTable(state(), 'variable')).toMatchObject({tableSort: 'variable', tableDescending: false});
    expect(sortTable(state(), 'gradient/l2')).toMatchObject({tableSort: 'gradient/l2', tableDescending: true});
    expect(sortTable(state(), 'nonfinite')).toMatchObject({tableSort: 'nonfinite', tableDescending: true});
  });

  it('flips the direction on the same column, and starts over on another', () => {
    const byLayer = sortTable(state(), 'layer');
    const flipped = sortTable(byLayer, 'layer');
    expect(flipped).toMatchObject({tableSort: 'layer', tableDescending: true});
    expect(sortTable(flipped, 'layer').tableDescending).toBe(false);
    expect(sortTable(flipped, 'weight/l2')).toMatchObject({tableSort: 'weight/l2', tableDescending: true});
  });

  it('filters, returning the same state for the same text', () => {
    const s = filterTable(state(), 'Conv');
    expect(s.tableFilter).toBe('Conv');
    expect(filterTable(s, 'Conv')).toBe(s);
    expect(filterTable(s, '').tableFilter).toBe('');
  });
});

describe('purity', () => {
  it('never changes the state it is given', () => {
    // The state is frozen all the way down, so any write throws; the copy checks nothing slipped by.
    const rich = state({
      runs: [a, b, c],
      run: 'a',
      stat: 'gradient/l2',
      view: 'layer',
      layer: 'conv1',
      step: 4,
      hiddenRuns: ['b'],
      histogramVariable: 'conv1/kernel',
      tableSort: 'layer',
    });
    const before = structuredClone(rich);
    const results = [
      withRuns(rich, [c]),
      selectRun(rich, 'b'),
      selectStat(rich, 'weight/l2'),
      openLayer(rich, 'dense', 1),
      showOverview(rich),
      selectStep(rich, 9),
      toggleRun(rich, 'b'),
      toggleRun(rich, 'c'),
      selectHistogramKind(rich, 'weight'),
      selectHistogramMode(rich, 'overlay'),
      selectHistogramVariable(rich, 'conv1/bias'),
      sortTable(rich, 'layer'),
      sortTable(rich, 'weight/l2'),
      filterTable(rich, 'x'),
    ];
    overlaidRuns(rich);
    expect(rich).toEqual(before);
    for (const result of results) expect(result).not.toBe(rich);
  });
});
