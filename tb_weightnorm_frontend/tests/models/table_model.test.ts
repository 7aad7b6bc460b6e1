import {describe, expect, it} from 'vitest';
import type {NormTable, TableRow} from '../../src/api/types';
import {NONFINITE_COLUMN, nonFiniteCount, statValue, visibleRows, type TableOrder} from '../../src/models/table_model';
import {normTable} from '../fixtures';

const COUNTS = ['weight/nan_count', 'weight/inf_count', 'gradient/nan_count', 'gradient/inf_count'];

const order = (fields: Partial<TableOrder>): TableOrder => ({sort: '', descending: true, filter: '', ...fields});
const names = (rows: TableRow[]) => rows.map((r) => r.variable);

describe('nonFiniteCount', () => {
  it('sums the NaN and infinite element counts of weight and gradient', () => {
    const table = normTable(['weight/l2', ...COUNTS], [['l', 'l/kernel', 1, 2, 3, 4, 5]]);
    expect(nonFiniteCount(table, table.rows[0])).toBe(14);
  });

  it('is 0 when the table does not count them or a count was not measured', () => {
    const uncounted = normTable(['weight/l2'], [['l', 'l/kernel', 1]]);
    expect(nonFiniteCount(uncounted, uncounted.rows[0])).toBe(0);
    const partly = normTable(['gradient/nan_count', 'weight/nan_count'], [['l', 'l/kernel', null, 2]]);
    expect(nonFiniteCount(partly, partly.rows[0])).toBe(2);
  });

  it('marks a row whose count is itself not finite, without making the total NaN', () => {
    const table = normTable(COUNTS, [['l', 'l/kernel', NaN, Infinity, 0, 1]]);
    const count = nonFiniteCount(table, table.rows[0]);
    expect(Number.isFinite(count)).toBe(true);
    expect(count).toBeGreaterThan(0);
  });
});

describe('statValue', () => {
  it('reads a stat of a row, null when the table has no such stat', () => {
    const table = normTable(['weight/l2', 'gradient/l2'], [['l', 'l/kernel', 1, 2]]);
    expect(statValue(table, table.rows[0], 'gradient/l2')).toBe(2);
    expect(statValue(table, table.rows[0], 'update/ratio')).toBeNull();
  });
});

describe('visibleRows', () => {
  // Model order: dense before conv on purpose, so a sort is told apart from it.
  const table: NormTable = normTable(
    ['gradient/l2', 'weight/nan_count'],
    [
      ['Dense', 'Dense/kernel', 2, 0],
      ['Dense', 'Dense/bias', null, 0],
      ['conv1', 'conv1/kernel', NaN, 3],
      ['conv1', 'conv1/bias', 5, 0],
      ['head', 'head/kernel', Infinity, 1],
      ['head', 'head/bias', 2, 0],
      ['head', 'head/scale', -Infinity, 0],
    ],
  );

  it('keeps model order without a sort column', () => {
    expect(names(visibleRows(table, order({})))).toEqual(names(table.rows));
  });

  it('filters on the layer or the variable name, in any case', () => {
    expect(names(visibleRows(table, order({filter: 'DENSE'})))).toEqual(['Dense/kernel', 'Dense/bias']);
    expect(names(visibleRows(table, order({filter: 'bias'})))).toEqual(['Dense/bias', 'conv1/bias', 'head/bias']);
    expect(names(visibleRows(table, order({filter: '  Kernel '})))).toEqual(['Dense/kernel', 'conv1/kernel', 'head/kernel']);
    expect(visibleRows(table, order({filter: 'nothing'}))).toEqual([]);
  });

  it('sorts by layer A to Z and back, keeping model order within a layer', () => {
    const ascending = names(visibleRows(table, order({sort: 'layer', descending: false})));
    expect(ascending).toEqual(['conv1/kernel', 'conv1/bias', 'Dense/kernel', 'Dense/bias', 'head/kernel', 'head/bias', 'head/scale']);
    const descending = names(visibleRows(table, order({sort: 'layer', descending: true})));
    expect(descending).toEqual(['head/kernel', 'head/bias', 'head/scale', 'Dense/kernel', 'Dense/bias', 'conv1/kernel', 'conv1/bias']);
  });

  it('sorts by variable', () => {
    const rows = names(visibleRows(table, order({sort: 'variable', descending: false, filter: 'head'})));
    expect(rows).toEqual(['head/bias', 'head/kernel', 'head/scale']);
  });

  it('sorts a stat largest first with NaN, then Infinity on top, and unmeasured last', () => {
    const rows = names(visibleRows(table, order({sort: 'gradient/l2', descending: true})));
    expect(rows).toEqual(['conv1/kernel', 'head/kernel', 'conv1/bias', 'Dense/kernel', 'head/bias', 'head/scale', 'Dense/bias']);
  });

  it('sorts a stat smallest first with NaN after the numbers and unmeasured still last', () => {
    const rows = names(visibleRows(table, order({sort: 'gradient/l2', descending: false})));
    expect(rows).toEqual(['head/scale', 'Dense/kernel', 'head/bias', 'conv1/bias', 'head/kernel', 'conv1/kernel', 'Dense/bias']);
  });

  it('sorts by the count of non-finite elements', () => {
    const rows = names(visibleRows(table, order({sort: NONFINITE_COLUMN, descending: true})));
    expect(rows.slice(0, 2)).toEqual(['conv1/kernel', 'head/kernel']);
    expect(rows.slice(2)).toEqual(['Dense/kernel', 'Dense/bias', 'conv1/bias', 'head/bias', 'head/scale']);
  });

  it('puts every row last, in model order, for a stat the table does not have', () => {
    expect(names(visibleRows(table, order({sort: 'update/ratio'})))).toEqual(names(table.rows));
  });

  it('filters and sorts together', () => {
    const rows = names(visibleRows(table, order({sort: 'gradient/l2', descending: true, filter: 'bias'})));
    expect(rows).toEqual(['conv1/bias', 'head/bias', 'Dense/bias']);
  });

  it('does not change the table', () => {
    const before = structuredClone(table);
    const rowsBefore = [...table.rows];
    visibleRows(table, order({sort: 'layer', descending: true}));
    visibleRows(table, order({sort: 'gradient/l2', filter: 'o'}));
    const all = visibleRows(table, order({}));
    expect(table).toEqual(before);
    expect(table.rows).toEqual(rowsBefore);
    expect(all).not.toBe(table.rows);
  });
});
