// Wires the data client, the host client, the state and the views together.
//
// Everything on screen is drawn by render() from the state and the data held;
// user actions change the state, render, put the state in the URL, and load
// whatever the new view needs that is not held yet.

import {buildCompareModel} from './chart_data';
import {colorMap} from './colors';
import type {
  Comparison,
  DataClient,
  Finding,
  Heatmap,
  HistogramKind,
  HistogramSet,
  KernelGrid,
  NormTable,
  RunInfo,
  SnapshotDistance,
  SnapshotList,
} from './data_client';
import {Latest} from './latest';
import {chosenPair, type SnapshotPair} from './snapshot_model';
import {
  currentRun,
  filterTable,
  initialState,
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
  type HistogramMode,
  type State,
} from './state';
import {LIGHT, type Theme} from './theme';
import {decodeUrlState, encodeUrlState, type UrlState} from './url_state';
import {el} from './views/dom';
import {createEmptyState} from './views/empty_state';
import {createFindings, type FindingsView} from './views/findings';
import {createHeatmap, type HeatmapView} from './views/heatmap';
import {LAYER_STATS, createLayerDetail, type LayerDetailModel, type LayerDetailView} from './views/layer_detail';
import {createNormTable, type NormTableView} from './views/norm_table';
import {createSelectors, type SelectorsView} from './views/selectors';
import {createSnapshots, type SnapshotsView} from './views/snapshots';
import {createStatus, type StatusView} from './views/status';

/** The part of the host client (host_client.ts) the app uses. */
export interface HostPort {
  onDataReloaded(callback: () => void): () => void;
  onRunsChanged(callback: (runs: string[]) => void): () => void;
  /** TensorBoard's run names; null outside TensorBoard. */
  getRuns(): Promise<string[] | null>;
  readUrlData(): Promise<Record<string, string>>;
  writeUrlData(data: Readonly<Record<string, string>>): void;
}

export interface ViewFactories {
  createHeatmap: typeof createHeatmap;
  createLayerDetail: typeof createLayerDetail;
}

export interface AppDeps {
  data: DataClient;
  host: HostPort;
  /** Calls back with the theme now and on every change; returns the unsubscribe. */
  followTheme?: (onChange: (theme: Theme) => void) => () => void;
  /** Replaceable in tests: the canvas views need a real browser. */
  views?: Partial<ViewFactories>;
}

/** Columns of the heatmap's step axis at most, whatever the width: enough for any screen. */
const MAX_HEATMAP_COLUMNS = 2000;
/** Points per run in a layer's line charts, and histograms per run. */
const CHART_POINTS = 1000;
const HISTOGRAMS_PER_RUN = 60;

const key = (...parts: unknown[]) => JSON.stringify(parts);

/** What a view says while it has nothing to show: its load failed, or it is loading. */
function loadingOr(slot: Latest<unknown>, what: string): string {
  return slot.error ? `Could not load ${what}: ${slot.error}` : 'Loading\u2026';
}

export class App {
  private state: State = initialState;
  private theme: Theme = LIGHT;
  private serverRuns: RunInfo[] = [];
  private hostRuns: string[] | null = null;
  private runsLoaded = false;
  private runsError: string | null = null;
  private runsRequest = 0;
  /** What the link asked for, applied once the runs are known. */
  private fromUrl: UrlState | null = null;

  private readonly table = new Latest<NormTable>();
  /**
   * The variables and logged steps of the run's last table, whatever its step:
   * the layer detail needs them while another step loads.
   */
  private runTable: {run: string; rows: {layer: string; variable: string}[]; steps: number[]} | null = null;
  private readonly findingsData = new Latest<Finding[]>();
  private readonly heatmapData = new Latest<Heatmap>();
  private readonly comparisons = new Map<string, Latest<Comparison>>();
  private readonly histogramData = new Latest<HistogramSet>();
  private readonly kernelData = new Latest<KernelGrid>();
  private readonly snapshotList = new Latest<SnapshotList>();
  private readonly snapshotDistance = new Latest<SnapshotDistance>();

  private readonly selectors: SelectorsView;
  private readonly status: StatusView;
  private readonly empty: HTMLElement;
  private readonly findings: FindingsView;
  private readonly heatmap: HeatmapView;
  private readonly normTable: NormTableView;
  private readonly snapshots: SnapshotsView;
  private readonly layerDetail: LayerDetailView;
  private readonly overview: HTMLElement;
  private readonly unsubscribe: (() => void)[] = [];

  constructor(
    readonly root: HTMLElement,
    private readonly deps: AppDeps,
  ) {
    const views = {createHeatmap, createLayerDetail, ...deps.views};
    this.selectors = createSelectors({
      onRun: (run) => this.act(selectRun(this.state, run)),
      onStat: (stat) => this.act(selectStat(this.state, stat)),
    });
    this.status = createStatus();
    this.empty = createEmptyState();
    this.findings = createFindings({onSelect: (finding) => this.openFinding(finding)});
    this.heatmap = views.createHeatmap({onSelect: (layer, step) => this.act(openLayer(this.state, layer, step))});
    this.normTable = createNormTable({
      onOpenLayer: (layer) => this.act(openLayer(this.state, layer)),
      onSort: (column) => this.act(sortTable(this.state, column)),
      onFilter: (filter) => this.act(filterTable(this.state, filter)),
      onStep: (step) => this.act(selectStep(this.state, step)),
    });
    this.layerDetail = views.createLayerDetail({
      onBack: () => this.act(showOverview(this.state)),
      onToggleRun: (run) => this.act(toggleRun(this.state, run)),
      onHistogramVariable: (variable) => this.act(selectHistogramVariable(this.state, variable)),
      onHistogramKind: (kind) => this.act(selectHistogramKind(this.state, kind)),
      onHistogramMode: (mode: HistogramMode) => this.act(selectHistogramMode(this.state, mode)),
      onStep: (step) => this.act(selectStep(this.state, step)),
    });
    this.snapshots = createSnapshots({
      onPick: (from, to) => this.act(selectSnapshots(this.state, from, to)),
      onOpenLayer: (layer) => this.act(openLayer(this.state, layer)),
    });
    this.overview = el('div', {className: 'wh-overview', testId: 'overview'}, [
      el('div', {className: 'wh-overview-top'}, [this.heatmap.element, this.findings.element]),
      this.normTable.element,
      this.snapshots.element,
    ]);
    root.classList.add('wh-root');
    root.append(this.selectors.element, this.status.element, this.empty, this.overview, this.layerDetail.element);
    this.unsubscribe.push(
      deps.host.onDataReloaded(() => void this.refresh(true)),
      deps.host.onRunsChanged((runs) => {
        this.hostRuns = runs;
        this.applyRuns();
        void this.loadShown(false);
      }),
    );
    if (deps.followTheme) this.unsubscribe.push(deps.followTheme((theme) => this.setTheme(theme)));
    this.render();
  }

  /** Reads the link's state and loads everything; resolves when the first views are drawn. */
  async start(): Promise<void> {
    const [url, hostRuns] = await Promise.all([
      this.deps.host.readUrlData().catch(() => ({})),
      this.deps.host.getRuns().catch(() => null),
    ]);
    this.fromUrl = decodeUrlState(url);
    this.hostRuns = hostRuns;
    await this.refresh(false);
  }

  /** Loads the runs again and everything shown, keeping what the user chose (the reload button). */
  reload(): Promise<void> {
    return this.refresh(true);
  }

  dispose(): void {
    for (const off of this.unsubscribe) off();
    this.layerDetail.destroy();
    this.heatmap.destroy();
  }

  get currentState(): State {
    return this.state;
  }

  private setTheme(theme: Theme): void {
    this.theme = theme;
    this.root.classList.toggle('wh-dark', theme.dark);
    this.root.ownerDocument.body.classList.toggle('wh-dark', theme.dark);
    this.render();
  }

  /** A user action: the new state is drawn, put in the URL, and what it needs is loaded. */
  private act(next: State): Promise<void> {
    if (next === this.state) return Promise.resolve();
    this.state = next;
    this.render();
    this.deps.host.writeUrlData(encodeUrlState(this.state));
    return this.loadShown(false);
  }

  private openFinding(finding: Finding): Promise<void> {
    if (finding.run !== this.state.run) return Promise.resolve();
    // A finding about the whole model has no layer to open: show its step in the overview.
    if (!this.layerNames().includes(finding.layer)) return this.act(selectStep(this.state, finding.first_step));
    return this.act(openLayer(this.state, finding.layer, finding.first_step));
  }

  private async refresh(force: boolean): Promise<void> {
    const request = ++this.runsRequest;
    if (!this.runsLoaded) this.status.info('Loading runs\u2026');
    let runs: RunInfo[];
    try {
      runs = await this.deps.data.getRuns();
    } catch (error) {
      if (request !== this.runsRequest) return;
      this.runsError = `Could not load the runs: ${error instanceof Error ? error.message : String(error)}`;
      this.render();
      return;
    }
    if (request !== this.runsRequest) return;
    this.runsError = null;
    this.runsLoaded = true;
    this.serverRuns = runs;
    this.applyRuns();
    await this.loadShown(force);
  }

  /** A new server or host run list: keep the choices that still hold (the caller loads what they need). */
  private applyRuns(): void {
    if (!this.runsLoaded) return;
    let next = withRuns(this.state, offeredRuns(this.serverRuns, this.hostRuns));
    if (this.fromUrl) {
      next = this.withLink(next, this.fromUrl);
      this.fromUrl = null;
    }
    this.state = next;
    this.render();
  }

  /** The link's state, where it names runs and layers that exist. */
  private withLink(state: State, link: UrlState): State {
    let next: State = {...state, ...link, runs: state.runs};
    if (link.run !== undefined && !state.runs.some((r) => r.run === link.run)) next.run = state.run;
    next = withRuns(next, state.runs);
    const info = currentRun(next);
    if (next.layer !== null && info && info.layers.length > 0 && !info.layers.includes(next.layer)) {
      next = {...next, view: 'overview', layer: null};
    }
    return next;
  }

  private layerNames(): string[] {
    return currentRun(this.state)?.layers ?? [];
  }

  /** Loads what the current view shows; `force` re-fetches what is held (TensorBoard reloaded). */
  private async loadShown(force: boolean): Promise<void> {
    const {run, stat} = this.state;
    if (run === null) return;
    const loads: Promise<unknown>[] = [
      // The layer detail's variable list comes with the first table of the run.
      this.loadTable(run, force).then(() => (this.state.view === 'layer' ? Promise.all(this.loadLayer(false)) : undefined)),
    ];
    if (this.state.view === 'overview') {
      loads.push(this.fill(this.findingsData, key(run), () => this.deps.data.getFindings(run), force));
      if (stat !== null) {
        const columns = Math.max(16, Math.min(MAX_HEATMAP_COLUMNS, Math.round(this.heatmap.columnsWanted())));
        loads.push(
          this.fill(this.heatmapData, key(run, stat, columns), () => this.deps.data.getHeatmap(run, stat, {by: 'layer', maxSteps: columns}), force),
        );
      }
      loads.push(this.loadSnapshots(run, force));
    } else {
      loads.push(...this.loadLayer(force));
    }
    await Promise.all(loads);
  }

  /**
   * The logged step the norm table shows for the chosen one: the last logged at
   * or before it (kernel grids and histograms are logged at steps the table may
   * not have, e.g. step 0); null for the latest.
   */
  private tableStep(run: string): number | null {
    const step = this.state.step;
    const steps = this.runTable?.run === run ? this.runTable.steps : null;
    if (step === null || !steps || steps.length === 0 || steps.includes(step)) return step;
    const before = steps.filter((s) => s <= step);
    return before.length ? before[before.length - 1] : steps[0];
  }

  private async loadTable(run: string, force: boolean): Promise<void> {
    const step = this.tableStep(run);
    await this.fill(this.table, key(run, step), () => this.deps.data.getTable(run, step ?? undefined), force);
    const table = this.table.value;
    if (table && table.run === run) this.runTable = {run, rows: table.rows, steps: table.steps};
    // A link or finding may name a step this run did not log: fall back to the latest.
    if (this.table.status === 404 && step !== null && this.table.key === key(run, step) && this.state.step === step) {
      this.state = selectStep(this.state, null);
      this.render();
      await this.loadTable(run, force);
    }
  }

  /** The run's snapshots, then the distances between the two compared. */
  private async loadSnapshots(run: string, force: boolean): Promise<void> {
    await this.fill(this.snapshotList, key(run), () => this.deps.data.getSnapshots(run), force);
    const pair = this.snapshotPair();
    if (pair === null || this.state.run !== run) return;
    const fetch = () => this.deps.data.getSnapshotDistance(run, pair.from, pair.to);
    await this.fill(this.snapshotDistance, key(run, pair.from, pair.to), fetch, force);
  }

  /** The snapshots compared; null while the run's list is not loaded, or it has none. */
  private snapshotPair(): SnapshotPair | null {
    const list = this.snapshotList.key === key(this.state.run) ? this.snapshotList.value : null;
    if (!list) return null;
    return chosenPair(list.snapshots.map((s) => s.epoch), this.state.snapshotFrom, this.state.snapshotTo);
  }

  private loadLayer(force: boolean): Promise<unknown>[] {
    const {layer} = this.state;
    const info = currentRun(this.state);
    if (layer === null || info === null) return [];
    const runs = overlaidRuns(this.state);
    if (runs.length === 0) return [];
    const loads: Promise<unknown>[] = [];
    for (const stat of this.layerStats()) {
      let slot = this.comparisons.get(stat);
      if (!slot) this.comparisons.set(stat, (slot = new Latest<Comparison>()));
      const fetch = () => this.deps.data.getComparison(runs, stat, {layers: [layer], maxSteps: CHART_POINTS});
      loads.push(this.fill(slot, this.comparisonKey(stat), fetch, force));
    }
    const variable = this.histogramVariable();
    const kind = this.histogramKind();
    const histogramKey = this.histogramKey();
    if (variable !== null && kind !== null && histogramKey !== null) {
      const fetch = () => this.deps.data.getHistograms(runs, variable, kind, HISTOGRAMS_PER_RUN);
      loads.push(this.fill(this.histogramData, histogramKey, fetch, force));
    }
    const grid = info.kernelGrids.find((g) => g.layer === layer);
    const kernelKey = this.kernelKey();
    if (grid && kernelKey !== null) {
      const run = info.run;
      loads.push(this.fill(this.kernelData, kernelKey, () => this.deps.data.getKernelGrids(run, grid.variable), force));
    }
    return loads;
  }

  // What each piece of the layer detail is loaded for; render() shows a piece only for its current key.
  private comparisonKey(stat: string): string {
    return key(overlaidRuns(this.state), stat, this.state.layer);
  }

  private histogramKey(): string | null {
    const variable = this.histogramVariable();
    const kind = this.histogramKind();
    return variable === null || kind === null ? null : key(overlaidRuns(this.state), variable, kind);
  }

  private kernelKey(): string | null {
    const grid = currentRun(this.state)?.kernelGrids.find((g) => g.layer === this.state.layer);
    return grid ? key(this.state.run, grid.variable) : null;
  }

  /** Loads one piece of data and draws what it changed. */
  private async fill<T>(slot: Latest<T>, slotKey: string, fetch: () => Promise<T>, force: boolean): Promise<void> {
    const loading = slot.load(slotKey, fetch, force);
    if (!slot.has(slotKey)) this.render(); // show "Loading" for the new key at once
    if (await loading) this.render();
  }

  private layerStats(): string[] {
    const logged = currentRun(this.state)?.stats ?? [];
    return LAYER_STATS.filter((s) => logged.includes(s));
  }

  /** The layer's variables (from the norm table), without the whole-model row. */
  private layerVariables(): string[] {
    const known = this.runTable;
    if (!known || known.run !== this.state.run || this.state.layer === null) return [];
    return known.rows.filter((r) => r.layer === this.state.layer).map((r) => r.variable);
  }

  private histogramKinds(): HistogramKind[] {
    const kinds = currentRun(this.state)?.histogramKinds ?? [];
    return kinds.filter((k): k is HistogramKind => k === 'weight' || k === 'gradient');
  }

  private histogramKind(): HistogramKind | null {
    const kinds = this.histogramKinds();
    return kinds.includes(this.state.histogramKind) ? this.state.histogramKind : (kinds[0] ?? null);
  }

  private histogramVariable(): string | null {
    if (this.histogramKinds().length === 0) return null;
    const variables = this.layerVariables();
    const chosen = this.state.histogramVariable;
    return chosen !== null && variables.includes(chosen) ? chosen : (variables[0] ?? null);
  }

  private runColors(): Map<string, string> {
    return colorMap(this.state.runs.map((r) => r.run));
  }

  // ---- drawing ----

  private render(): void {
    const noRuns = this.runsLoaded && this.state.runs.length === 0;
    this.empty.hidden = !noRuns;
    this.selectors.element.hidden = noRuns;
    const info = currentRun(this.state);
    this.selectors.update(this.state.runs, this.state.run, info?.stats ?? [], this.state.stat);
    const inLayer = this.state.view === 'layer' && this.state.layer !== null && !noRuns;
    this.overview.hidden = noRuns || inLayer;
    this.renderStatus();
    if (inLayer) {
      this.layerDetail.update(this.layerModel());
    } else {
      this.layerDetail.update(null);
      this.renderOverview();
    }
  }

  private renderStatus(): void {
    const run = this.state.run;
    const errors = [this.runsError, this.table.error && `Could not load the norm table of ${run}: ${this.table.error}`];
    if (this.state.view === 'overview') {
      errors.push(this.findingsData.error && `Could not diagnose ${run}: ${this.findingsData.error}`);
      errors.push(this.heatmapData.error && `Could not load the heatmap of ${run}: ${this.heatmapData.error}`);
    }
    const error = errors.find((e) => e);
    if (error) this.status.error(error);
    else if (!this.runsLoaded) this.status.info('Loading runs\u2026');
    else this.status.clear();
  }

  private renderOverview(): void {
    const run = this.state.run;
    // The heatmap first: it reads its width from the layout, which is cheap
    // before the other views change the page and costly after.
    const heatmap = this.heatmapData.value;
    const current = heatmap && heatmap.run === run && heatmap.stat === this.state.stat ? heatmap : null;
    this.heatmap.update(current, {
      theme: this.theme,
      message: current ? undefined : (this.heatmapData.error ?? (run === null ? 'Nothing to draw.' : 'Loading\u2026')),
      selectedLayer: this.state.layer,
      markedStep: this.state.step,
    });
    const findings = this.findingsData.key === key(run) ? this.findingsData.value : null;
    this.findings.element.hidden = run === null;
    this.findings.update(findings);
    const table = this.table.value && this.table.value.run === run ? this.table.value : null;
    this.normTable.update(
      table,
      {sort: this.state.tableSort, descending: this.state.tableDescending, filter: this.state.tableFilter},
      this.state.layer,
    );
    this.renderSnapshots();
  }

  private renderSnapshots(): void {
    const list = this.snapshotList.key === key(this.state.run) ? this.snapshotList.value : null;
    const pair = this.snapshotPair();
    if (!list || pair === null) {
      this.snapshots.update(null);
      return;
    }
    const distanceKey = key(this.state.run, pair.from, pair.to);
    const distance = this.snapshotDistance.key === distanceKey ? this.snapshotDistance.value : null;
    const skipped = list.skipped.map((s) => s.reason).join('; ');
    this.snapshots.update({
      snapshots: list.snapshots,
      pair,
      distance,
      message: distance
        ? skipped || undefined
        : this.snapshotDistance.key === distanceKey
          ? loadingOr(this.snapshotDistance, 'the distances')
          : 'Loading\u2026',
    });
  }

  private layerModel(): LayerDetailModel {
    const layer = this.state.layer!;
    const colors = this.runColors();
    const runColor = (run: string) => colors.get(run) ?? '#000';
    const overlaid = new Set(overlaidRuns(this.state));
    const runs = this.state.runs
      .filter((r) => r.layers.length === 0 || r.layers.includes(layer))
      .map((r) => ({run: r.run, color: runColor(r.run), shown: overlaid.has(r.run)}));
    const charts = this.layerStats().map((stat) => {
      const slot = this.comparisons.get(stat);
      const comparison = slot?.key === this.comparisonKey(stat) ? slot.value : null;
      return {
        stat,
        model: comparison ? buildCompareModel(comparison, runColor) : null,
        message: slot?.error ? `Could not load ${stat}: ${slot.error}` : undefined,
      };
    });
    const info = currentRun(this.state);
    const grid = info?.kernelGrids.find((g) => g.layer === layer) ?? null;
    const variable = this.histogramVariable();
    const histogramKey = this.histogramKey();
    const kernelKey = this.kernelKey();
    const histograms = histogramKey !== null && this.histogramData.key === histogramKey ? this.histogramData.value : null;
    const kernelGrid = kernelKey !== null && this.kernelData.key === kernelKey ? this.kernelData.value : null;
    return {
      layer,
      step: this.state.step ?? this.table.value?.step ?? null,
      runs,
      charts,
      histogramVariables: this.histogramKinds().length ? this.layerVariables() : [],
      histogramVariable: variable,
      histogramKinds: this.histogramKinds(),
      histogramKind: this.histogramKind() ?? 'gradient',
      histogramMode: this.state.histogramMode,
      histograms,
      histogramMessage: histograms ? undefined : loadingOr(this.histogramData, 'the histograms'),
      kernelGrid,
      kernelGridMessage: kernelGrid ? undefined : loadingOr(this.kernelData, 'the kernel grid'),
      hasKernelGrid: grid !== null,
      runColor,
      theme: this.theme,
    };
  }
}
