// @vitest-environment happy-dom
import {describe, expect, it} from 'vitest';
import {App, NO_VARIABLES_CHARTED} from '../src/app';
import type {ChartModel} from '../src/chart_data';
import {ApiError, type DataClient, type Finding, type NormTable, type RunInfo, type StatSeries} from '../src/data_client';
import type {ChartView} from '../src/views/chart';
import {EMPTY_MESSAGE} from '../src/views/empty_state';

const STATS = ['weight/l2', 'gradient/l2', 'update/ratio', 'weight/mean'];

function runInfo(run: string, stats = STATS): RunInfo {
  return {run, steps: 2, first_step: 1, last_step: 11, variables: 2, stats};
}

function tableOf(run: string, variables: string[]): NormTable {
  return {
    run,
    step: 11,
    wall_time: 0,
    steps: [1, 11],
    stats: STATS,
    rows: variables.map((variable) => ({layer: 'l', variable, values: [1, 2, 0.001, 0]})),
  };
}

/** A backend in memory; records the calls. */
class FakeData implements DataClient {
  runs: RunInfo[] = [runInfo('a'), runInfo('b', ['weight/l2'])];
  variables: Record<string, string[]> = {a: ['a/k', 'a/b'], b: ['b/k']};
  calls: string[] = [];
  failTable: string | null = null;
  findings: Record<string, Finding[]> = {};
  findingCalls: string[] = [];

  async getRuns() {
    this.calls.push('runs');
    return this.runs;
  }
  async getTable(run: string) {
    this.calls.push(`table ${run}`);
    if (run === this.failTable) throw new ApiError(`Unknown run: '${run}' (HTTP 404 NOT FOUND)`, 404);
    return tableOf(run, this.variables[run]);
  }
  async getFindings(run: string): Promise<Finding[]> {
    this.findingCalls.push(run);
    return this.findings[run] ?? [];
  }
  async getSeries(run: string, stat: string, variables?: readonly string[]): Promise<StatSeries> {
    this.calls.push(`series ${run} ${stat} ${(variables ?? []).join(',')}`);
    return {
      run,
      stat,
      steps: [1, 11],
      wall_times: [0, 1],
      series: (variables ?? []).map((variable) => ({layer: 'l', variable, values: [1, 0.5]})),
    };
  }
}

class FakeHost {
  private callbacks: (() => void)[] = [];
  onDataReloaded(callback: () => void) {
    this.callbacks.push(callback);
    return () => void (this.callbacks = this.callbacks.filter((c) => c !== callback));
  }
  reload() {
    this.callbacks.forEach((c) => c());
  }
}

class FakeChart implements ChartView {
  element = document.createElement('div');
  model: ChartModel | null = null;
  message: string | undefined;
  constructor() {
    this.element.dataset.testid = 'chart';
  }
  update(model: ChartModel | null, message?: string) {
    this.model = model;
    this.message = message;
  }
  destroy() {}
}

/** Lets pending promise chains finish. */
const settle = () => new Promise((r) => setTimeout(r, 0));

async function start(data = new FakeData()) {
  const host = new FakeHost();
  const chart = new FakeChart();
  const root = document.createElement('div');
  document.body.appendChild(root);
  const app = new App(root, {data, host, createChart: () => chart});
  await app.start();
  await settle();
  const q = <T extends Element = HTMLElement>(testId: string) => root.querySelector<T>(`[data-testid="${testId}"]`)!;
  const rowVariables = () =>
    Array.from(root.querySelectorAll<HTMLElement>('[data-testid="norm-row"]')).map((r) => r.dataset.variable);
  const selectedRows = () =>
    Array.from(root.querySelectorAll<HTMLElement>('[data-testid="norm-row"].selected')).map((r) => r.dataset.variable);
  return {app, data, host, chart, root, q, rowVariables, selectedRows};
}

describe('App', () => {
  it('shows the first run, its default stat, the table and all variables charted', async () => {
    const {data, chart, q, rowVariables, selectedRows} = await start();
    expect(q<HTMLSelectElement>('run-select').value).toBe('a');
    expect(q<HTMLSelectElement>('stat-select').value).toBe('gradient/l2');
    expect(rowVariables()).toEqual(['a/k', 'a/b']);
    expect(selectedRows()).toEqual(['a/k', 'a/b']);
    expect(data.calls).toEqual(['runs', 'table a', 'series a gradient/l2 a/k,a/b']);
    expect(chart.model!.lines.map((l) => l.variable)).toEqual(['a/k', 'a/b']);
    expect(chart.model!.logScale).toBe(true);
    expect(q('status').hidden).toBe(true);
    expect(q('empty').hidden).toBe(true);
  });

  it('toggles chart variables by clicking rows', async () => {
    const {data, chart, root, selectedRows} = await start();
    const row = root.querySelector<HTMLElement>('[data-variable="a/k"]')!;
    row.click();
    expect(selectedRows()).toEqual(['a/b']);
    expect(chart.model!.lines.map((l) => l.variable)).toEqual(['a/b']);
    await settle();
    expect(data.calls.at(-1)).toBe('series a gradient/l2 a/b');

    root.querySelector<HTMLElement>('[data-variable="a/b"]')!.click();
    await settle();
    expect(selectedRows()).toEqual([]);
    expect(chart.model).toBeNull();
    expect(chart.message).toBe(NO_VARIABLES_CHARTED);

    root.querySelector<HTMLElement>('[data-variable="a/k"]')!.click();
    await settle();
    expect(chart.model!.lines.map((l) => l.variable)).toEqual(['a/k']);
  });

  it('loads the chosen stat and run', async () => {
    const {data, chart, q, rowVariables} = await start();
    const stat = q<HTMLSelectElement>('stat-select');
    stat.value = 'weight/mean';
    stat.dispatchEvent(new Event('change'));
    await settle();
    expect(data.calls.at(-1)).toBe('series a weight/mean a/k,a/b');
    expect(chart.model!.stat).toBe('weight/mean');
    expect(chart.model!.logScale).toBe(false);

    const run = q<HTMLSelectElement>('run-select');
    run.value = 'b';
    run.dispatchEvent(new Event('change'));
    await settle();
    // Run b has no weight/mean: its default stat is taken.
    expect(q<HTMLSelectElement>('stat-select').value).toBe('weight/l2');
    expect(rowVariables()).toEqual(['b/k']);
    expect(data.calls.slice(-2)).toEqual(['table b', 'series b weight/l2 b/k']);
  });

  it('re-fetches on DataReloaded and keeps the choices', async () => {
    const {data, host, root, selectedRows, rowVariables} = await start();
    root.querySelector<HTMLElement>('[data-variable="a/b"]')!.click();
    await settle();
    data.variables.a = ['a/k', 'a/b', 'a/new'];
    data.calls = [];
    host.reload();
    await settle();
    expect(data.calls).toEqual(['runs', 'table a', 'series a gradient/l2 a/k']);
    expect(rowVariables()).toEqual(['a/k', 'a/b', 'a/new']);
    expect(selectedRows()).toEqual(['a/k']);
  });

  it('shows the empty state when there are no runs', async () => {
    const data = new FakeData();
    data.runs = [];
    const {q} = await start(data);
    expect(q('empty').hidden).toBe(false);
    expect(q('empty').textContent).toBe(EMPTY_MESSAGE);
    expect(q('norm-table').closest('[hidden]')).not.toBeNull();
    expect(data.calls).toEqual(['runs']);
  });

  it('shows errors in the status line instead of throwing', async () => {
    const data = new FakeData();
    data.failTable = 'a';
    const {q} = await start(data);
    expect(q('status').hidden).toBe(false);
    expect(q('status').classList.contains('error')).toBe(true);
    expect(q('status').textContent).toContain("Unknown run: 'a'");
  });

  it('drops an answer that a newer request overtook', async () => {
    const data = new FakeData();
    const {app, q} = await start(data);
    let release!: () => void;
    const slow = new Promise<void>((r) => (release = r));
    const getTable = data.getTable.bind(data);
    data.getTable = async (run) => {
      if (run === 'b') await slow;
      return getTable(run);
    };
    const toB = app.chooseRun('b');
    const backToA = app.chooseRun('a');
    await backToA;
    release();
    await toB;
    await settle();
    expect(q<HTMLSelectElement>('run-select').value).toBe('a');
    expect(Array.from(q('norm-table').querySelectorAll('tr[data-variable]')).map((r) => (r as HTMLElement).dataset.variable)).toEqual(['a/k', 'a/b']);
  });
});

describe('App after a failed table load', () => {
  it('does not keep saying "Loading" in the chart', async () => {
    const data = new FakeData();
    data.failTable = 'a';
    const {chart} = await start(data);
    expect(chart.model).toBeNull();
    expect(chart.message).toBe('Nothing to draw.');
  });

  it('shows the findings of the run, and a click charts what a finding is about', async () => {
    const data = new FakeData();
    const finding: Finding = {
      run: 'a', rule: 'dead_units', severity: 'critical', layer: 'l', variable: 'a/b',
      first_step: 1, last_step: 11, value: 1, threshold: 0.95, message: '<img src=x onerror=alert(1)> dead', ongoing: true,
    };
    data.findings = {a: [finding]};
    const {chart, root, q} = await start(data);
    expect(data.findingCalls).toEqual(['a']);
    const items = root.querySelectorAll<HTMLElement>('[data-testid="finding"]');
    expect(items.length).toBe(1);
    expect(items[0].dataset.severity).toBe('critical');
    expect(items[0].textContent).toContain('<img src=x onerror=alert(1)> dead');
    expect(root.querySelector('img')).toBeNull();
    expect(q('findings').textContent).toContain('steps 1\u201311, ongoing');
    items[0].click();
    await settle();
    expect(chart.model!.lines.map((l) => l.variable)).toEqual(['a/b']);
    expect(data.calls.at(-1)).toBe('series a gradient/l2 a/b');
  });

  it('says so when the diagnosis found nothing', async () => {
    const {q} = await start();
    expect(q('findings').textContent).toContain('No findings');
  });
});
