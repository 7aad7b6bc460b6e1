// Wires the data client, the host client, the state and the views together.

import {buildChartModel} from './chart_data';
import {colorMap} from './colors';
import type {DataClient, Finding, NormTable, StatSeries} from './data_client';
import {
  chartOnly,
  chartVariables,
  currentRun,
  initialState,
  selectRun,
  selectStat,
  toggleVariable,
  withRuns,
  type State,
} from './state';
import {createChart, type ChartView} from './views/chart';
import {el} from './views/dom';
import {createEmptyState} from './views/empty_state';
import {createFindings, type FindingsView} from './views/findings';
import {createNormTable, type NormTableView} from './views/norm_table';
import {createSelectors, type SelectorsView} from './views/selectors';
import {createStatus, type StatusView} from './views/status';

/** The part of the host client the app uses. */
export interface HostEvents {
  onDataReloaded(callback: () => void): () => void;
}

export interface AppDeps {
  data: DataClient;
  host: HostEvents;
  /** Replaceable in tests (uPlot needs a real canvas). */
  createChart?: () => ChartView;
}

export const NO_VARIABLES_CHARTED = 'Click rows in the table to chart their variables.';

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export class App {
  private state: State = initialState;
  private table: NormTable | null = null;
  private series: StatSeries | null = null;
  private runsLoaded = false;
  // Each load bumps its counter; an answer that comes back after a newer request was made is dropped.
  private runsRequest = 0;
  private tableRequest = 0;
  private seriesRequest = 0;
  private findingsRequest = 0;
  private findingsOf: {run: string; findings: Finding[]} | null = null;

  private readonly selectors: SelectorsView;
  private readonly status: StatusView;
  private readonly empty: HTMLElement;
  private readonly findings: FindingsView;
  private readonly normTable: NormTableView;
  private readonly chart: ChartView;
  private readonly content: HTMLElement;
  private readonly unsubscribe: () => void;

  constructor(
    readonly root: HTMLElement,
    private readonly deps: AppDeps,
  ) {
    this.selectors = createSelectors({
      onRun: (run) => void this.chooseRun(run),
      onStat: (stat) => void this.chooseStat(stat),
    });
    this.status = createStatus();
    this.empty = createEmptyState();
    this.findings = createFindings({onSelect: (finding) => void this.showFinding(finding)});
    this.normTable = createNormTable({onToggle: (variable) => void this.toggle(variable)});
    this.chart = (deps.createChart ?? createChart)();
    this.content = el('div', {className: 'wh-content'}, [this.normTable.element, this.chart.element]);
    root.classList.add('wh-root');
    root.append(this.selectors.element, this.status.element, this.empty, this.findings.element, this.content);
    this.unsubscribe = deps.host.onDataReloaded(() => void this.loadRuns());
    this.renderAll();
  }

  /** Loads everything; resolves when the first view is drawn (errors are shown, not thrown). */
  start(): Promise<void> {
    return this.loadRuns();
  }

  /** Reloads runs, table and chart, keeping what the user chose. */
  reload(): Promise<void> {
    return this.loadRuns();
  }

  dispose(): void {
    this.unsubscribe();
    this.chart.destroy();
  }

  get currentState(): State {
    return this.state;
  }

  private variables(): string[] {
    return this.table ? this.table.rows.map((r) => r.variable) : [];
  }

  async loadRuns(): Promise<void> {
    const request = ++this.runsRequest;
    if (this.state.runs.length === 0) this.status.info('Loading runs\u2026');
    let runs;
    try {
      runs = await this.deps.data.getRuns();
    } catch (error) {
      if (request === this.runsRequest) this.status.error(`Could not load the runs: ${message(error)}`);
      return;
    }
    if (request !== this.runsRequest) return;
    this.runsLoaded = true;
    const previousRun = this.state.run;
    this.state = withRuns(this.state, runs);
    if (this.state.run !== previousRun) {
      this.table = null;
      this.series = null;
    }
    this.renderAll();
    if (this.state.run === null) {
      this.status.clear();
      return;
    }
    await this.loadTable();
  }

  private async loadTable(): Promise<void> {
    const run = this.state.run;
    if (run === null) return;
    const request = ++this.tableRequest;
    if (!this.table) this.status.info(`Loading run ${run}\u2026`);
    let table;
    try {
      table = await this.deps.data.getTable(run);
    } catch (error) {
      if (request === this.tableRequest) {
        this.status.error(`Could not load the norm table of ${run}: ${message(error)}`);
        // Keep a table from an earlier load; without one, stop saying "Loading".
        if (!this.table) this.chart.update(null, 'Nothing to draw.');
      }
      return;
    }
    if (request !== this.tableRequest) return;
    this.table = table;
    this.renderTable();
    await Promise.all([this.loadSeries(), this.loadFindings()]);
  }

  private async loadFindings(): Promise<void> {
    const run = this.state.run;
    if (run === null) return;
    const request = ++this.findingsRequest;
    let findings;
    try {
      findings = await this.deps.data.getFindings(run);
    } catch (error) {
      if (request === this.findingsRequest) this.status.error(`Could not diagnose ${run}: ${message(error)}`);
      return;
    }
    if (request !== this.findingsRequest) return;
    this.findingsOf = {run, findings};
    this.renderFindings();
  }

  /** Charts what a finding is about: its variable, or every variable of its layer. */
  async showFinding(finding: Finding): Promise<void> {
    if (!this.table || finding.run !== this.state.run) return;
    const about = this.table.rows
      .filter((r) => (finding.variable ? r.variable === finding.variable : r.layer === finding.layer))
      .map((r) => r.variable);
    if (about.length === 0) return;
    this.state = chartOnly(this.state, about, this.variables());
    this.renderTable();
    this.renderChart();
    await this.loadSeries();
  }

  private async loadSeries(): Promise<void> {
    const {run, stat} = this.state;
    const variables = chartVariables(this.state, this.variables());
    const request = ++this.seriesRequest;
    if (run === null || stat === null || variables.length === 0) {
      this.series = null;
      this.renderChart();
      this.status.clear();
      return;
    }
    let series;
    try {
      series = await this.deps.data.getSeries(run, stat, variables);
    } catch (error) {
      if (request === this.seriesRequest) this.status.error(`Could not load ${stat} of ${run}: ${message(error)}`);
      return;
    }
    if (request !== this.seriesRequest) return;
    this.series = series;
    this.renderChart();
    this.status.clear();
  }

  async chooseRun(run: string): Promise<void> {
    const next = selectRun(this.state, run);
    if (next === this.state) return;
    this.state = next;
    this.table = null;
    this.series = null;
    this.renderAll();
    await this.loadTable();
  }

  async chooseStat(stat: string): Promise<void> {
    const next = selectStat(this.state, stat);
    if (next === this.state) return;
    this.state = next;
    this.series = null;
    this.renderSelectors();
    this.renderChart();
    await this.loadSeries();
  }

  async toggle(variable: string): Promise<void> {
    this.state = toggleVariable(this.state, variable, this.variables());
    this.renderTable();
    // Lines already loaded change at once (a removed one disappears); added ones come with the fetch.
    this.renderChart();
    await this.loadSeries();
  }

  private renderAll(): void {
    const noRuns = this.runsLoaded && this.state.runs.length === 0;
    this.empty.hidden = !noRuns;
    this.content.hidden = noRuns;
    this.selectors.element.hidden = noRuns;
    this.renderSelectors();
    this.renderFindings();
    this.renderTable();
    this.renderChart();
  }

  private renderFindings(): void {
    const mine = this.findingsOf && this.findingsOf.run === this.state.run ? this.findingsOf.findings : null;
    this.findings.element.hidden = this.state.run === null;
    this.findings.update(mine);
  }

  private renderSelectors(): void {
    const run = currentRun(this.state);
    this.selectors.update(this.state.runs, this.state.run, run?.stats ?? [], this.state.stat);
  }

  private renderTable(): void {
    const colors = colorMap(this.variables());
    const charted = new Set(chartVariables(this.state, this.variables()));
    this.normTable.update(this.table, charted, (v) => colors.get(v) ?? '#000');
  }

  private renderChart(): void {
    const variables = chartVariables(this.state, this.variables());
    if (!this.table) {
      this.chart.update(null, this.state.run === null ? 'Nothing to draw.' : 'Loading\u2026');
      return;
    }
    if (variables.length === 0) {
      this.chart.update(null, NO_VARIABLES_CHARTED);
      return;
    }
    if (!this.series || this.series.stat !== this.state.stat || this.series.run !== this.state.run) {
      this.chart.update(null, 'Loading\u2026');
      return;
    }
    const colors = colorMap(this.variables());
    const model = buildChartModel(this.series, variables, (v) => colors.get(v) ?? '#000');
    this.chart.update(model, 'No data for the chosen variables.');
  }
}
