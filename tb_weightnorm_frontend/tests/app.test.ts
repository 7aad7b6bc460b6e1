// @vitest-environment happy-dom
import {describe, expect, it} from 'vitest';
import {App, type HostPort} from '../src/app';
import type {CompareWhat, DataClient, HeatmapOptions} from '../src/api/client';
import {
  ApiError,
  type Comparison,
  type Finding,
  type Heatmap,
  type HistogramKind,
  type HistogramSet,
  type KernelGrid,
  type NormTable,
  type RunInfo,
  type SnapshotDistance,
  type SnapshotList,
  type StatSeries,
} from '../src/api/types';
import {DARK, LIGHT, type Theme} from '../src/ui/theme';
import {EMPTY_MESSAGE} from '../src/views/empty_state';
import type {HeatmapView} from '../src/views/heatmap';
import type {LayerDetailHandlers, LayerDetailModel, LayerDetailView} from '../src/views/layer_detail';

const STATS = ['weight/l2', 'gradient/l2', 'update/ratio', 'weight/nan_count'];

function runInfo(run: string, layers: string[], extra: Partial<RunInfo> = {}): RunInfo {
  return {
    run,
    steps: 2,
    first_step: 1,
    last_step: 11,
    variables: 2 * layers.length,
    stats: STATS,
    layers,
    histogramKinds: ['weight', 'gradient'],
    kernelGrids: [],
    gradientNote: '',
    ...extra,
  };
}

/** A backend in memory; records the calls. */
class FakeData implements DataClient {
  runs: RunInfo[] = [
    runInfo('a', ['conv', 'dense'], {kernelGrids: [{layer: 'conv', variable: 'm/conv/kernel', mode: 'rgb', filtersTotal: 4, lastStep: 11}]}),
    runInfo('b', ['conv', 'dense']),
    runInfo('c', ['other']),
  ];
  steps = [1, 11];
  calls: string[] = [];
  failTable: string | null = null;
  failRuns = false;
  findings: Record<string, Finding[]> = {};
  /** Epochs with a weight snapshot, by run (none for a run left out). */
  snapshotEpochs: Record<string, number[]> = {a: [0, 2, 4]};

  async getRuns() {
    this.calls.push('runs');
    if (this.failRuns) throw new ApiError('data server down (HTTP 503)', 503);
    return this.runs;
  }
  async getTable(run: string, step?: number): Promise<NormTable> {
    this.calls.push(`table ${run} ${step ?? 'latest'}`);
    if (run === this.failTable) throw new ApiError(`run '${run}' has no Weight Health data (HTTP 404)`, 404);
    if (step !== undefined && !this.steps.includes(step)) throw new ApiError(`step ${step} was not logged (HTTP 404)`, 404);
    const info = this.runs.find((r) => r.run === run)!;
    return {
      run,
      step: step ?? this.steps[this.steps.length - 1],
      wall_time: 0,
      steps: this.steps,
      stats: STATS,
      rows: info.layers.flatMap((layer) => [
        {layer, variable: `m/${layer}/kernel`, values: [1, 2, 0.001, 0]},
        {layer, variable: `m/${layer}/bias`, values: [0.1, 0.2, 0.01, 0]},
      ]),
    };
  }
  async getSeries(): Promise<StatSeries> {
    throw new Error('not used by the tab');
  }
  async getFindings(run: string): Promise<Finding[]> {
    this.calls.push(`findings ${run}`);
    return this.findings[run] ?? [];
  }
  async getHeatmap(run: string, stat: string, options?: HeatmapOptions): Promise<Heatmap> {
    this.calls.push(`heatmap ${run} ${stat} ${options?.by} ${options?.maxSteps}`);
    const info = this.runs.find((r) => r.run === run)!;
    return {
      run,
      stat,
      by: 'layer',
      steps: this.steps,
      firstSteps: this.steps,
      loggedSteps: this.steps.length,
      reduce: 'max',
      rows: info.layers.map((layer) => ({layer, variables: [], global: false, values: [1, 2]})),
    };
  }
  async getComparison(runs: readonly string[], stat: string, what: CompareWhat): Promise<Comparison> {
    this.calls.push(`compare ${runs.join(',')} ${stat} ${(what.layers ?? []).join(',')}`);
    return {
      stat,
      runs: runs.map((run) => ({
        run,
        statLogged: true,
        missing: [],
        missingLayers: [],
        wallTimes: [0, 1],
        steps: this.steps,
        firstSteps: this.steps,
        loggedSteps: 2,
        reduce: 'last',
        series: [{layer: what.layers![0], variable: `m/${what.layers![0]}/kernel`, values: [1, 0.5]}],
      })),
    };
  }
  async getHistograms(runs: readonly string[], variable: string, kind: HistogramKind): Promise<HistogramSet> {
    this.calls.push(`histograms ${runs.join(',')} ${variable} ${kind}`);
    return {variable, kind, runs: runs.map((run) => ({run, layer: '', histograms: [], missing: null}))};
  }
  async getKernelGrids(run: string, variable: string): Promise<KernelGrid> {
    this.calls.push(`kernel_grids ${run} ${variable}`);
    return {run, variable, layer: 'conv', mode: 'rgb', filtersTotal: 4, images: []};
  }
  async getSnapshots(run: string): Promise<SnapshotList> {
    this.calls.push(`snapshots ${run}`);
    const snapshots = (this.snapshotEpochs[run] ?? []).map((epoch) => ({epoch, step: 10 * epoch, wallTime: 0, variables: 4}));
    return {run, snapshots, skipped: []};
  }
  async getSnapshotDistance(run: string, from: number, to: number): Promise<SnapshotDistance> {
    this.calls.push(`snapshot_distance ${run} ${from} ${to}`);
    const values = (distance: number) => ({distance, relative: distance / 10, normFrom: 10, normTo: 10, nonFinite: 0});
    const info = this.runs.find((r) => r.run === run)!;
    return {
      run,
      from: {epoch: from, step: 10 * from, wallTime: 0},
      to: {epoch: to, step: 10 * to, wallTime: 0},
      total: values(to - from),
      layers: info.layers.map((layer, i) => ({
        layer,
        ...values((to - from) * (i + 1)),
        variables: [{variable: `m/${layer}/kernel`, shape: [2, 2], ...values((to - from) * (i + 1))}],
      })),
      unmatched: [],
    };
  }
}

class FakeHost implements HostPort {
  private reloaded: (() => void)[] = [];
  private runsChanged: ((runs: string[]) => void)[] = [];
  hostRuns: string[] | null = null;
  url: Record<string, string> = {};
  written: Record<string, string>[] = [];

  onDataReloaded(callback: () => void) {
    this.reloaded.push(callback);
    return () => void (this.reloaded = this.reloaded.filter((c) => c !== callback));
  }
  onRunsChanged(callback: (runs: string[]) => void) {
    this.runsChanged.push(callback);
    return () => void (this.runsChanged = this.runsChanged.filter((c) => c !== callback));
  }
  async getRuns() {
    return this.hostRuns;
  }
  async readUrlData() {
    return this.url;
  }
  writeUrlData(data: Readonly<Record<string, string>>) {
    this.written.push({...data});
  }
  reload() {
    this.reloaded.forEach((c) => c());
  }
  changeRuns(runs: string[]) {
    this.runsChanged.forEach((c) => c(runs));
  }
}

/** Stands in for the canvas heatmap (it needs a real browser); keeps what it was given. */
class FakeHeatmap implements HeatmapView {
  element = document.createElement('section');
  shown: Heatmap | null = null;
  theme: Theme | null = null;
  constructor(readonly onSelect: (layer: string, step: number) => void) {}
  update(heatmap: Heatmap | null, options: {theme: Theme}) {
    this.shown = heatmap;
    this.theme = options.theme;
  }
  columnsWanted() {
    return 640;
  }
  destroy() {}
}

class FakeLayerDetail implements LayerDetailView {
  element = document.createElement('section');
  model: LayerDetailModel | null = null;
  constructor(readonly handlers: LayerDetailHandlers) {}
  update(model: LayerDetailModel | null) {
    this.model = model;
  }
  destroy() {}
}

/** Lets pending promise chains finish. */
const settle = () => new Promise((r) => setTimeout(r, 0));

async function start(options: {data?: FakeData; host?: FakeHost} = {}) {
  const data = options.data ?? new FakeData();
  const host = options.host ?? new FakeHost();
  const root = document.createElement('div');
  document.body.appendChild(root);
  let heatmap!: FakeHeatmap;
  let detail!: FakeLayerDetail;
  let setTheme!: (theme: Theme) => void;
  const app = new App(root, {
    data,
    host,
    followTheme: (onChange) => {
      setTheme = onChange;
      onChange(LIGHT);
      return () => {};
    },
    views: {
      createHeatmap: (handlers) => (heatmap = new FakeHeatmap(handlers.onSelect)),
      createLayerDetail: (handlers) => (detail = new FakeLayerDetail(handlers)),
    },
  });
  await app.start();
  await settle();
  const q = <T extends Element = HTMLElement>(testId: string) => root.querySelector<T>(`[data-testid="${testId}"]`)!;
  const rowVariables = () =>
    Array.from(root.querySelectorAll<HTMLElement>('[data-testid="norm-row"]')).map((r) => r.dataset.variable);
  return {app, data, host, root, q, rowVariables, heatmap, detail, setTheme: (t: Theme) => setTheme(t)};
}

function finding(run: string, layer: string, step: number): Finding {
  return {
    run,
    rule: 'nonfinite',
    severity: 'critical',
    layer,
    variable: '',
    first_step: step,
    last_step: 11,
    value: 1,
    threshold: 0,
    message: 'NaN',
    ongoing: true,
  };
}

describe('App overview', () => {
  it('shows the first run: its table, findings and a heatmap by layer as wide as the canvas', async () => {
    const {data, q, rowVariables, heatmap} = await start();
    expect(q<HTMLSelectElement>('run-select').value).toBe('a');
    expect(q<HTMLSelectElement>('stat-select').value).toBe('gradient/l2');
    expect(rowVariables()).toEqual(['m/conv/kernel', 'm/conv/bias', 'm/dense/kernel', 'm/dense/bias']);
    expect(data.calls).toContain('heatmap a gradient/l2 layer 640');
    expect(data.calls).toContain('findings a');
    expect(heatmap.shown?.rows.map((r) => r.layer)).toEqual(['conv', 'dense']);
    expect(q('overview').hidden).toBe(false);
  });

  it('loads the chosen stat and run', async () => {
    const {data, q, heatmap} = await start();
    const stat = q<HTMLSelectElement>('stat-select');
    stat.value = 'weight/l2';
    stat.dispatchEvent(new Event('change'));
    await settle();
    expect(heatmap.shown?.stat).toBe('weight/l2');
    const run = q<HTMLSelectElement>('run-select');
    run.value = 'c';
    run.dispatchEvent(new Event('change'));
    await settle();
    expect(data.calls).toContain('table c latest');
    expect(heatmap.shown?.run).toBe('c');
  });

  it('shows the empty state when there are no runs', async () => {
    const data = new FakeData();
    data.runs = [];
    const {root, q} = await start({data});
    expect(root.textContent).toContain(EMPTY_MESSAGE);
    expect(q('overview').hidden).toBe(true);
  });

  it('shows errors in the status line instead of throwing', async () => {
    const data = new FakeData();
    data.failRuns = true;
    const {q} = await start({data});
    expect(q('status').textContent).toContain('data server down');
    expect(q('status').classList.contains('error')).toBe(true);
  });

  it('re-fetches on DataReloaded and keeps the choices', async () => {
    const {data, host, q} = await start();
    const run = q<HTMLSelectElement>('run-select');
    run.value = 'b';
    run.dispatchEvent(new Event('change'));
    await settle();
    data.calls = [];
    host.reload();
    await settle();
    expect(data.calls).toEqual(expect.arrayContaining(['runs', 'table b latest', 'findings b']));
    expect(q<HTMLSelectElement>('run-select').value).toBe('b');
  });

  it('chooses a step on the norm table and falls back to the latest when it was not logged', async () => {
    const {app, data, host} = await start({host: Object.assign(new FakeHost(), {url: {step: '7'}})});
    expect(data.calls).toContain('table a 7');
    expect(app.currentState.step).toBeNull();
    expect(data.calls[data.calls.length - 1]).not.toBe('table a 7');
    expect(host.written).toEqual([]); // a fallback is not a user action
  });
});

describe('App weight snapshots', () => {
  const distanceTexts = (root: HTMLElement) =>
    Array.from(root.querySelectorAll<HTMLElement>('[data-testid="snapshot-row"]')).map((r) => [
      r.dataset.layer,
      r.querySelector('[data-testid="snapshot-distance"]')!.textContent,
    ]);

  it('compares the first and last snapshots of the run, then the two picked', async () => {
    const {app, data, host, q, root} = await start();
    expect(data.calls).toEqual(expect.arrayContaining(['snapshots a', 'snapshot_distance a 0 4']));
    expect(q('snapshots').hidden).toBe(false);
    expect(distanceTexts(root)).toEqual([
      ['conv', '4'],
      ['dense', '8'],
    ]);
    const from = q<HTMLSelectElement>('snapshot-from');
    expect(Array.from(from.options).map((o) => o.textContent)).toEqual([
      'epoch 0 \u00b7 before training',
      'epoch 2 \u00b7 step 20',
      'epoch 4 \u00b7 step 40',
    ]);
    from.value = '2';
    from.dispatchEvent(new Event('change'));
    await settle();
    expect(data.calls).toContain('snapshot_distance a 2 4');
    expect(app.currentState).toMatchObject({snapshotFrom: 2, snapshotTo: 4});
    expect(host.written[host.written.length - 1]).toMatchObject({sfrom: '2', sto: '4'});
    expect(distanceTexts(root)).toEqual([
      ['conv', '2'],
      ['dense', '4'],
    ]);
  });

  it('hides the section for a run without snapshots and goes back to first and last on a run change', async () => {
    const {app, data, q} = await start({host: Object.assign(new FakeHost(), {url: {sfrom: '2', sto: '2'}})});
    expect(data.calls).toContain('snapshot_distance a 2 2');
    const run = q<HTMLSelectElement>('run-select');
    run.value = 'b';
    run.dispatchEvent(new Event('change'));
    await settle();
    expect(q('snapshots').hidden).toBe(true);
    expect(data.calls.filter((c) => c.startsWith('snapshot_distance b'))).toEqual([]);
    expect(app.currentState).toMatchObject({snapshotFrom: null, snapshotTo: null});
  });

  it('opens a layer from its row', async () => {
    const {app, root} = await start();
    root.querySelector<HTMLElement>('[data-testid="snapshot-row"][data-layer="dense"]')!.click();
    await settle();
    expect(app.currentState).toMatchObject({view: 'layer', layer: 'dense'});
  });
});

describe('App layer detail', () => {
  it('opens a layer from the heatmap at the clicked step, overlaying the runs that have it', async () => {
    const {app, data, heatmap, detail, host, q} = await start();
    heatmap.onSelect('conv', 1);
    await settle();
    expect(app.currentState.view).toBe('layer');
    expect(q('overview').hidden).toBe(true);
    expect(detail.model?.layer).toBe('conv');
    expect(detail.model?.step).toBe(1);
    // Run c has no layer "conv": not overlaid, not offered.
    expect(detail.model?.runs.map((r) => [r.run, r.shown])).toEqual([
      ['a', true],
      ['b', true],
    ]);
    expect(data.calls).toEqual(expect.arrayContaining(['compare a,b gradient/l2 conv', 'compare a,b weight/l2 conv', 'compare a,b update/ratio conv']));
    expect(data.calls).toContain('histograms a,b m/conv/kernel gradient');
    expect(data.calls).toContain('kernel_grids a m/conv/kernel');
    expect(detail.model?.charts.every((c) => c.model !== null)).toBe(true);
    expect(detail.model?.charts[0].model?.lines.map((l) => l.run)).toEqual(['a', 'b']);
    expect(detail.model?.hasKernelGrid).toBe(true);
    expect(host.written[host.written.length - 1]).toMatchObject({view: 'layer', layer: 'conv', step: '1', run: 'a'});
  });

  it('takes a run out of the overlays and back, and goes back to the overview', async () => {
    const {app, data, heatmap, detail} = await start();
    heatmap.onSelect('dense', 11);
    await settle();
    detail.handlers.onToggleRun('b');
    await settle();
    expect(data.calls).toContain('compare a gradient/l2 dense');
    expect(data.calls.filter((c) => c.startsWith('compare a gradient/l2'))).toHaveLength(1);
    expect(detail.model?.runs.find((r) => r.run === 'b')?.shown).toBe(false);
    expect(detail.model?.hasKernelGrid).toBe(false);
    detail.handlers.onBack();
    await settle();
    expect(app.currentState.view).toBe('overview');
    expect(detail.model).toBeNull();
  });

  it('switches the histogram variable and kind', async () => {
    const {data, heatmap, detail} = await start();
    heatmap.onSelect('conv', 11);
    await settle();
    detail.handlers.onHistogramVariable('m/conv/bias');
    detail.handlers.onHistogramKind('weight');
    await settle();
    expect(data.calls).toContain('histograms a,b m/conv/bias weight');
    expect(detail.model?.histogramVariable).toBe('m/conv/bias');
    expect(detail.model?.histograms?.variable).toBe('m/conv/bias');
    expect(detail.model?.histogramVariables).toEqual(['m/conv/kernel', 'm/conv/bias']);
  });

  it('opens the layer and first step of a clicked finding', async () => {
    const data = new FakeData();
    data.findings.a = [finding('a', 'dense', 11), finding('a', '(model)', 1)];
    const {app, root} = await start({data});
    const items = root.querySelectorAll<HTMLElement>('[data-testid="finding"]');
    expect(items).toHaveLength(2);
    items[1].click(); // about the whole model: no layer to open, the step is chosen
    await settle();
    expect(app.currentState).toMatchObject({view: 'overview', step: 1});
    items[0].click();
    await settle();
    expect(app.currentState).toMatchObject({view: 'layer', layer: 'dense', step: 11});
  });

  it('restores a shared link, ignoring a layer the run does not have', async () => {
    const host = new FakeHost();
    host.url = {run: 'b', view: 'layer', layer: 'dense', kind: 'weight', mode: 'overlay'};
    const {app, detail} = await start({host});
    expect(app.currentState).toMatchObject({run: 'b', view: 'layer', layer: 'dense', histogramMode: 'overlay'});
    expect(detail.model?.histogramKind).toBe('weight');
    expect(detail.model?.histogramMode).toBe('overlay');

    const other = new FakeHost();
    other.url = {run: 'c', view: 'layer', layer: 'conv'};
    const second = await start({host: other});
    expect(second.app.currentState).toMatchObject({run: 'c', view: 'overview', layer: null});
  });
});

describe('App inside TensorBoard', () => {
  it("offers only TensorBoard's runs, in its order, and follows changes to its run list", async () => {
    const host = new FakeHost();
    host.hostRuns = ['b', 'a'];
    const {q, app} = await start({host});
    const options = () => Array.from(q<HTMLSelectElement>('run-select').options).map((o) => o.value);
    expect(options()).toEqual(['b', 'a']);
    expect(app.currentState.run).toBe('b');
    host.changeRuns(['c']);
    await settle();
    expect(options()).toEqual(['c']);
    expect(app.currentState.run).toBe('c');
  });

  it('follows the dark mode of the host page', async () => {
    const {root, heatmap, setTheme} = await start();
    expect(root.classList.contains('wh-dark')).toBe(false);
    setTheme(DARK);
    expect(root.classList.contains('wh-dark')).toBe(true);
    expect(heatmap.theme).toBe(DARK);
    setTheme(LIGHT);
    expect(root.classList.contains('wh-dark')).toBe(false);
  });
});
