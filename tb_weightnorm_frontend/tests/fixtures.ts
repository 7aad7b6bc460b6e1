// Small builders of the data client's shapes, for tests of the pure modules.
import type {CompareRun, NormTable, RunInfo, StatValue, TableRow} from '../src/api/types';

/** A run as GET runs decodes it; only what a test names differs from an empty run. */
export function runInfo(run: string, fields: Partial<Omit<RunInfo, 'run'>> = {}): RunInfo {
  return {
    run,
    steps: 3,
    first_step: 1,
    last_step: 3,
    variables: 2,
    stats: ['weight/l2', 'gradient/l2'],
    layers: [],
    histogramKinds: [],
    kernelGrids: [],
    gradientNote: '',
    ...fields,
  };
}

/** A norm table of `stats` whose rows are [layer, variable, ...values in the order of `stats`]. */
export function normTable(stats: string[], rows: [string, string, ...StatValue[]][]): NormTable {
  const tableRows: TableRow[] = rows.map(([layer, variable, ...values]) => ({layer, variable, values}));
  return {run: 'run', step: 10, wall_time: 0, steps: [10], stats, rows: tableRows};
}

/** One run of a compare response: `series` maps variables to their values at `steps`. */
export function compareRun(run: string, steps: number[], series: Record<string, StatValue[]>): CompareRun {
  return {
    run,
    statLogged: true,
    missing: [],
    missingLayers: [],
    steps,
    firstSteps: steps,
    loggedSteps: steps.length,
    reduce: 'last',
    wallTimes: steps.map(() => 0),
    series: Object.entries(series).map(([variable, values]) => ({
      layer: variable.split('/').slice(0, -1).join('/'),
      variable,
      values,
    })),
  };
}
