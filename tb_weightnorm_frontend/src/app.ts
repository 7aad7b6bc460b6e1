// Wires the data client, the host client, the state and the views together.
//
// Everything on screen is drawn by render() from the state and the data held;
// user actions change the state, render, put the state in the URL, and load
// whatever the new view needs that is not held yet.

import type {DataClient} from './api/client';
import type {Finding, RunInfo} from './api/types';
import {
  comparisonKey,
  histogramKey,
  histogramKind,
  histogramVariable,
  kernelGridOf,
  kernelKey,
  layerDetailModel,
  layerStats,
  snapshotPair,
  snapshotsModel,
  tableStep,
} from './state/derived';
import {Held, key} from './state/held';
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
} from './state/state';
import {decodeUrlState, encodeUrlState, withLink, type UrlState} from './state/url_state';
import {LIGHT, type Theme} from './ui/theme';
import {el} from './views/dom';
import {createEmptyState} from './views/empty_state';
import {createFindings, type FindingsView} from './views/findings';
import {createHeatmap, type HeatmapView} from './views/heatmap';
import {createLayerDetail, type LayerDetailView} from './views/layer_detail';
import {createNormTable, type NormTableView} from './views/norm_table';
import {createSelectors, type SelectorsView} from './views/selectors';
import {createSnapshots, type SnapshotsView} from './views/snapshots';
import {createStatus, type StatusView} from './views/status';

/** The part of the host client (host/client.ts) the app uses. */
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

  private readonly held = new Held(() => this.render());

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
    const layers = currentRun(this.state)?.layers ?? [];
    if (!layers.includes(finding.layer)) return this.act(selectStep(this.state, finding.first_step));
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
      next = withLink(next, this.fromUrl);
      this.fromUrl = null;
    }
    this.state = next;
    this.render();
  }

  /** Loads what the current view shows; `force` re-fetches what is held (TensorBoard reloaded). */
  private async loadShown(force: boolean): Promise<void> {
    const {run, stat} = this.state;
    if (run === null) return;
    const {data} = this.deps;
    const held = this.held;
    const loads: Promise<unknown>[] = [
      // The layer detail's variable list comes with the first table of the run.
      this.loadTable(run, force).then(() => (this.state.view === 'layer' ? Promise.all(this.loadLayer(false)) : undefined)),
    ];
    if (this.state.view === 'overview') {
      loads.push(held.fill(held.findings, key(run), () => data.getFindings(run), force));
      if (stat !== null) {
        const columns = Math.max(16, Math.min(MAX_HEATMAP_COLUMNS, Math.round(this.heatmap.columnsWanted())));
        const fetch = () => data.getHeatmap(run, stat, {by: 'layer', maxSteps: columns});
        loads.push(held.fill(held.heatmap, key(run, stat, columns), fetch, force));
      }
      loads.push(this.loadSnapshots(run, force));
    } else {
      loads.push(...this.loadLayer(force));
    }
    await Promise.all(loads);
  }

  private async loadTable(run: string, force: boolean): Promise<void> {
    const held = this.held;
    const step = tableStep(this.state, held.runTable, run);
    await held.fill(held.table, key(run, step), () => this.deps.data.getTable(run, step ?? undefined), force);
    held.keepRunTable(run);
    // A link or finding may name a step this run did not log: fall back to the latest.
    if (held.table.status === 404 && step !== null && held.table.key === key(run, step) && this.state.step === step) {
      this.state = selectStep(this.state, null);
      this.render();
      await this.loadTable(run, force);
    }
  }

  /** The run's snapshots, then the distances between the two compared. */
  private async loadSnapshots(run: string, force: boolean): Promise<void> {
    const held = this.held;
    await held.fill(held.snapshotList, key(run), () => this.deps.data.getSnapshots(run), force);
    const pair = snapshotPair(this.state, held);
    if (pair === null || this.state.run !== run) return;
    const fetch = () => this.deps.data.getSnapshotDistance(run, pair.from, pair.to);
    await held.fill(held.snapshotDistance, key(run, pair.from, pair.to), fetch, force);
  }

  private loadLayer(force: boolean): Promise<unknown>[] {
    const {state, held} = this;
    const {data} = this.deps;
    const layer = state.layer;
    const info = currentRun(state);
    if (layer === null || info === null) return [];
    const runs = overlaidRuns(state);
    if (runs.length === 0) return [];
    const loads: Promise<unknown>[] = [];
    for (const stat of layerStats(state)) {
      const fetch = () => data.getComparison(runs, stat, {layers: [layer], maxSteps: CHART_POINTS});
      loads.push(held.fill(held.comparison(stat), comparisonKey(state, stat), fetch, force));
    }
    const variable = histogramVariable(state, held.runTable);
    const kind = histogramKind(state);
    const histogramsFor = histogramKey(state, held.runTable);
    if (variable !== null && kind !== null && histogramsFor !== null) {
      const fetch = () => data.getHistograms(runs, variable, kind, HISTOGRAMS_PER_RUN);
      loads.push(held.fill(held.histograms, histogramsFor, fetch, force));
    }
    const grid = kernelGridOf(state);
    const gridFor = kernelKey(state);
    if (grid && gridFor !== null) {
      const run = info.run;
      loads.push(held.fill(held.kernelGrid, gridFor, () => data.getKernelGrids(run, grid.variable), force));
    }
    return loads;
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
      this.layerDetail.update(layerDetailModel(this.state, this.held, this.theme));
    } else {
      this.layerDetail.update(null);
      this.renderOverview();
    }
  }

  private renderStatus(): void {
    const {run} = this.state;
    const held = this.held;
    const errors = [this.runsError, held.table.error && `Could not load the norm table of ${run}: ${held.table.error}`];
    if (this.state.view === 'overview') {
      errors.push(held.findings.error && `Could not diagnose ${run}: ${held.findings.error}`);
      errors.push(held.heatmap.error && `Could not load the heatmap of ${run}: ${held.heatmap.error}`);
    }
    const error = errors.find((e) => e);
    if (error) this.status.error(error);
    else if (!this.runsLoaded) this.status.info('Loading runs\u2026');
    else this.status.clear();
  }

  private renderOverview(): void {
    const {run} = this.state;
    const held = this.held;
    // The heatmap first: it reads its width from the layout, which is cheap
    // before the other views change the page and costly after.
    const heatmap = held.heatmap.value;
    const current = heatmap && heatmap.run === run && heatmap.stat === this.state.stat ? heatmap : null;
    this.heatmap.update(current, {
      theme: this.theme,
      message: current ? undefined : (held.heatmap.error ?? (run === null ? 'Nothing to draw.' : 'Loading\u2026')),
      selectedLayer: this.state.layer,
      markedStep: this.state.step,
    });
    const findings = held.findings.key === key(run) ? held.findings.value : null;
    this.findings.element.hidden = run === null;
    this.findings.update(findings);
    const table = held.table.value && held.table.value.run === run ? held.table.value : null;
    this.normTable.update(
      table,
      {sort: this.state.tableSort, descending: this.state.tableDescending, filter: this.state.tableFilter},
      this.state.layer,
    );
    this.snapshots.update(snapshotsModel(this.state, this.held));
  }
}
