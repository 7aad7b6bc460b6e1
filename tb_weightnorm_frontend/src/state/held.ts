// The data the tab holds: one Latest per piece on screen, each loaded for a
// key (the request's parameters), so a view shows a piece only while its key
// is the one the state asks for, and a slow answer to an older request is
// never shown.

import type {Comparison, Finding, Heatmap, HistogramSet, KernelGrid, NormTable, SnapshotDistance, SnapshotList} from '../api/types';
import {Latest} from './latest';

/** The key of a request; parts are JSON so that names with any character stay apart. */
export const key = (...parts: unknown[]) => JSON.stringify(parts);

/** The variables and logged steps of a run's last table, whatever its step. */
export interface RunTable {
  run: string;
  rows: {layer: string; variable: string}[];
  steps: number[];
}

export class Held {
  readonly table = new Latest<NormTable>();
  /** Kept apart from `table`: the layer detail needs the run's variables while another step loads. */
  runTable: RunTable | null = null;
  readonly findings = new Latest<Finding[]>();
  readonly heatmap = new Latest<Heatmap>();
  readonly histograms = new Latest<HistogramSet>();
  readonly kernelGrid = new Latest<KernelGrid>();
  readonly snapshotList = new Latest<SnapshotList>();
  readonly snapshotDistance = new Latest<SnapshotDistance>();
  /** One per stat: the layer detail's charts load side by side. */
  private readonly comparisons = new Map<string, Latest<Comparison>>();

  /** `onChange` draws again; it is called whenever what a view could show changed. */
  constructor(private readonly onChange: () => void) {}

  /** The slot of `stat`'s comparison, made on first use (by a load). */
  comparison(stat: string): Latest<Comparison> {
    let slot = this.comparisons.get(stat);
    if (!slot) this.comparisons.set(stat, (slot = new Latest<Comparison>()));
    return slot;
  }

  /** The slot of `stat`'s comparison if one was loaded, for the selectors, which only read. */
  findComparison(stat: string): Latest<Comparison> | undefined {
    return this.comparisons.get(stat);
  }

  /** Loads one piece of data and draws what it changed. */
  async fill<T>(slot: Latest<T>, slotKey: string, fetch: () => Promise<T>, force: boolean): Promise<void> {
    const loading = slot.load(slotKey, fetch, force);
    if (!slot.has(slotKey)) this.onChange(); // show "Loading" for the new key at once
    if (await loading) this.onChange();
  }

  /** Remembers the run's variables and steps from a table that answers `run`. */
  keepRunTable(run: string): void {
    const table = this.table.value;
    if (table && table.run === run) this.runTable = {run, rows: table.rows, steps: table.steps};
  }
}
