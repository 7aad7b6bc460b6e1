// "Norms at step N": one row per variable at one chosen step, sortable by any
// column, filterable by name, NaN/Inf marked. A click on a row opens its layer.

import type {NormTable, StatValue} from '../api/types';
import {formatExact, formatNumber, isNonFinite} from '../ui/format';
import {NONFINITE_COLUMN, TABLE_COLUMNS, nonFiniteCount, statValue, visibleRows, type TableOrder} from '../models/table_model';
import {clear, el} from './dom';

export interface NormTableHandlers {
  onOpenLayer: (layer: string) => void;
  onSort: (column: string) => void;
  onFilter: (filter: string) => void;
  /** A step chosen on the slider (null: back to the latest). */
  onStep: (step: number | null) => void;
}

export interface NormTableView {
  element: HTMLElement;
  /** Draws `table` (null: nothing yet) in `order`; `layer` is the layer open in detail. */
  update(table: NormTable | null, order: TableOrder, layer: string | null): void;
}

/** The global row belongs to no layer one can open. */
const MODEL_LAYER = '(model)';

function valueCell(value: StatValue): HTMLTableCellElement {
  const cell = el('td', {className: 'wh-num', text: formatNumber(value), attrs: {title: formatExact(value)}});
  if (isNonFinite(value)) cell.classList.add('nonfinite');
  if (value === null) cell.classList.add('missing');
  return cell;
}

function nonFiniteCell(count: number): HTMLTableCellElement {
  const cell = el('td', {className: 'wh-num', text: count > 0 ? `\u26a0 ${formatNumber(count)}` : ''});
  if (count > 0) {
    cell.classList.add('nonfinite');
    cell.title = `${count} NaN or infinite element${count === 1 ? '' : 's'} in the weight or gradient`;
  }
  return cell;
}

/** The path as text nodes with line-break opportunities after each "/". */
function breakablePath(path: string): Node[] {
  const nodes: Node[] = [];
  path.split('/').forEach((part, i, parts) => {
    nodes.push(document.createTextNode(i < parts.length - 1 ? part + '/' : part));
    if (i < parts.length - 1) nodes.push(document.createElement('wbr'));
  });
  return nodes;
}

const COLUMNS: readonly {title: string; key: string; numeric: boolean; tip: string}[] = [
  {title: 'Layer', key: 'layer', numeric: false, tip: 'layer'},
  {title: 'Variable', key: 'variable', numeric: false, tip: 'variable'},
  ...TABLE_COLUMNS.map((c) => ({title: c.title, key: c.stat, numeric: true, tip: c.stat})),
  {title: 'NaN/Inf', key: NONFINITE_COLUMN, numeric: true, tip: 'NaN and infinite elements in the weight or gradient'},
];

function createStepPicker(onStep: (step: number | null) => void) {
  const slider = el('input', {testId: 'table-step', attrs: {type: 'range', min: '0', max: '0', 'aria-label': 'Step of the norm table'}});
  const label = el('span', {className: 'wh-step-label'});
  const latest = el('button', {className: 'wh-button', text: 'Latest', attrs: {type: 'button'}});
  let steps: number[] = [];
  const showLabel = () => (label.textContent = steps.length ? `step ${steps[Number(slider.value)]}` : '');
  // Only the release fetches: a drag across 2,000 steps must not send 2,000 requests.
  slider.addEventListener('input', showLabel);
  slider.addEventListener('change', () => onStep(steps[Number(slider.value)] ?? null));
  latest.addEventListener('click', () => onStep(null));
  return {
    element: el('div', {className: 'wh-step-picker'}, [slider, label, latest]),
    update(all: number[], step: number) {
      steps = all;
      slider.max = String(Math.max(0, all.length - 1));
      slider.value = String(Math.max(0, all.indexOf(step)));
      slider.disabled = all.length < 2;
      latest.disabled = all.length === 0 || step === all[all.length - 1];
      showLabel();
    },
  };
}

export function createNormTable(handlers: NormTableHandlers): NormTableView {
  const title = el('h2', {className: 'wh-title'});
  const filter = el('input', {
    className: 'wh-filter',
    testId: 'table-filter',
    attrs: {type: 'search', placeholder: 'Filter by layer or variable', 'aria-label': 'Filter the norm table'},
  });
  filter.addEventListener('input', () => handlers.onFilter(filter.value));
  const picker = createStepPicker(handlers.onStep);
  const headers = COLUMNS.map((c) => {
    const th = el('th', {className: c.numeric ? 'wh-num wh-sortable' : 'wh-sortable', text: c.title, attrs: {title: `Sort by ${c.tip}`, tabindex: '0'}});
    th.dataset.column = c.key;
    return th;
  });
  const head = el('thead', {}, [el('tr', {}, headers)]);
  const body = el('tbody');
  const table = el('table', {className: 'wh-table', testId: 'norm-table'}, [head, body]);
  const summary = el('p', {className: 'wh-hint'});
  const element = el('section', {className: 'wh-section wh-norms', testId: 'norms'}, [
    el('div', {className: 'wh-section-head'}, [title, picker.element, filter]),
    table,
    summary,
  ]);

  const onHeader = (target: EventTarget | null) => {
    const th = target instanceof Element ? target.closest<HTMLElement>('th[data-column]') : null;
    if (th?.dataset.column) handlers.onSort(th.dataset.column);
  };
  head.addEventListener('click', (event) => onHeader(event.target));
  head.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' || event.key === ' ') {
      event.preventDefault();
      onHeader(event.target);
    }
  });

  // One listener for all rows: rows are rebuilt on every update.
  const rowLayer = (target: EventTarget | null): string | null => {
    const row = target instanceof Element ? target.closest<HTMLElement>('tr[data-layer]') : null;
    const layer = row?.dataset.layer ?? null;
    return layer === MODEL_LAYER ? null : layer;
  };
  body.addEventListener('click', (event) => {
    const layer = rowLayer(event.target);
    if (layer !== null) handlers.onOpenLayer(layer);
  });
  body.addEventListener('keydown', (event) => {
    if (event.key !== 'Enter' && event.key !== ' ') return;
    const layer = rowLayer(event.target);
    if (layer === null) return;
    event.preventDefault();
    handlers.onOpenLayer(layer);
  });

  // What the rows show: every render of the app passes them, but rebuilding
  // a thousand rows when nothing changed would cost more than the rest of it.
  let drawn: unknown[] = [];

  return {
    element,
    update(data, order, layer) {
      element.hidden = data === null;
      const key = [data, order.sort, order.descending, order.filter, layer];
      if (key.every((part, i) => part === drawn[i])) return;
      drawn = key;
      clear(body);
      if (!data) return;
      title.textContent = `Norms at step ${data.step}`;
      picker.update(data.steps, data.step);
      // Typing must not be undone by a render that carries an older filter.
      if (document.activeElement !== filter) filter.value = order.filter;
      for (const th of headers) {
        const sorted = th.dataset.column === order.sort;
        th.setAttribute('aria-sort', sorted ? (order.descending ? 'descending' : 'ascending') : 'none');
      }
      const rows = visibleRows(data, order);
      let marked = 0;
      for (const row of rows) {
        const bad = nonFiniteCount(data, row);
        const cells = TABLE_COLUMNS.map((c) => valueCell(statValue(data, row, c.stat)));
        const tr = el('tr', {testId: 'norm-row', attrs: {tabindex: '0'}}, [
          el('td', {}, [el('div', {className: 'wh-name', text: row.layer})]),
          el('td', {className: 'wh-variable'}, [el('div', {className: 'wh-name'}, breakablePath(row.variable))]),
          ...cells,
          nonFiniteCell(bad),
        ]);
        tr.dataset.layer = row.layer;
        tr.dataset.variable = row.variable;
        if (bad > 0 || cells.some((c) => c.classList.contains('nonfinite'))) {
          tr.classList.add('has-nonfinite');
          marked++;
        }
        if (row.layer === layer) tr.classList.add('selected');
        body.appendChild(tr);
      }
      if (rows.length === 0) {
        const text = data.rows.length === 0 ? 'No variables at this step.' : 'No variable matches the filter.';
        body.appendChild(el('tr', {}, [el('td', {className: 'wh-none', text, attrs: {colspan: String(COLUMNS.length)}})]));
      }
      const shown = rows.length === data.rows.length ? `${rows.length} variables` : `${rows.length} of ${data.rows.length} variables`;
      summary.textContent = `${shown}${marked > 0 ? `, ${marked} with NaN or Inf` : ''}. Click a row to open its layer.`;
    },
  };
}
