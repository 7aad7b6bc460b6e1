// The norm table's columns, non-finite marks, sorting and filtering. Pure.

import type {NormTable, StatValue, TableRow} from '../api/types';

/** The stat columns: header and the stat they show. */
export const TABLE_COLUMNS: readonly {title: string; stat: string}[] = [
  {title: 'Weight L2', stat: 'weight/l2'},
  {title: 'Gradient L2', stat: 'gradient/l2'},
  {title: 'Update ratio', stat: 'update/ratio'},
  {title: 'Dead fraction', stat: 'gradient/dead_fraction'},
];

/** The column counting NaN and infinite elements (sort key "nonfinite"). */
export const NONFINITE_COLUMN = 'nonfinite';

// Norms are taken over the finite elements, so a NaN weight shows in these counts, not as a NaN norm.
const NONFINITE_COUNTS = ['weight/nan_count', 'weight/inf_count', 'gradient/nan_count', 'gradient/inf_count'];

/** NaN and infinite elements of the row's weight and gradient (0 when not counted). */
export function nonFiniteCount(table: NormTable, row: TableRow): number {
  let total = 0;
  for (const stat of NONFINITE_COUNTS) {
    const i = table.stats.indexOf(stat);
    const v = i < 0 ? null : row.values[i];
    if (typeof v === 'number' && v > 0) total += Number.isFinite(v) ? v : 1;
  }
  return total;
}

/** The value of `stat` in `row`; null when the table has no such stat. */
export function statValue(table: NormTable, row: TableRow, stat: string): StatValue {
  const i = table.stats.indexOf(stat);
  return i < 0 ? null : (row.values[i] ?? null);
}

export interface TableOrder {
  /** "layer", "variable", a stat, NONFINITE_COLUMN, or "" for model order. */
  sort: string;
  descending: boolean;
  filter: string;
}

function compareNumbers(a: StatValue, b: StatValue, descending: boolean): number {
  // Not measured goes last either way: it says nothing about health.
  if (a === null || b === null) return a === b ? 0 : a === null ? 1 : -1;
  const nanA = Number.isNaN(a);
  const nanB = Number.isNaN(b);
  // NaN is the most alarming value: first when descending, last when ascending.
  if (nanA || nanB) return nanA === nanB ? 0 : (nanA ? -1 : 1) * (descending ? 1 : -1);
  if (a === b) return 0;
  return (a < b ? -1 : 1) * (descending ? -1 : 1);
}

/** The rows to show: filtered by name (any case), then sorted; ties keep model order. */
export function visibleRows(table: NormTable, order: TableOrder): TableRow[] {
  const needle = order.filter.trim().toLowerCase();
  const rows = needle
    ? table.rows.filter((r) => r.layer.toLowerCase().includes(needle) || r.variable.toLowerCase().includes(needle))
    : [...table.rows];
  if (order.sort === '') return rows;
  const sign = order.descending ? -1 : 1;
  const index = new Map(table.rows.map((r, i) => [r, i]));
  const byModelOrder = (a: TableRow, b: TableRow) => index.get(a)! - index.get(b)!;
  if (order.sort === 'layer' || order.sort === 'variable') {
    const key = order.sort;
    return rows.sort((a, b) => sign * a[key].localeCompare(b[key]) || byModelOrder(a, b));
  }
  const value = (r: TableRow): StatValue =>
    order.sort === NONFINITE_COLUMN ? nonFiniteCount(table, r) : statValue(table, r, order.sort);
  return rows.sort((a, b) => compareNumbers(value(a), value(b), order.descending) || byModelOrder(a, b));
}
