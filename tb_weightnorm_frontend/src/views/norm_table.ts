// "Norms at step N": one row per variable at one step. Clicking a row adds its
// variable to the chart or removes it.

import type {NormTable, StatValue} from '../data_client';
import {formatExact, formatNumber, isNonFinite} from '../format';
import {clear, el} from './dom';

/** The table's stat columns: header and the stat they show. */
export const TABLE_COLUMNS: readonly {title: string; stat: string}[] = [
  {title: 'Weight L2', stat: 'weight/l2'},
  {title: 'Gradient L2', stat: 'gradient/l2'},
  {title: 'Update ratio', stat: 'update/ratio'},
];

export interface NormTableView {
  element: HTMLElement;
  /** Draws `table` (null: nothing yet); `colorOf` gives the colour of a charted variable. */
  update(table: NormTable | null, charted: ReadonlySet<string>, colorOf: (variable: string) => string): void;
}

function valueCell(value: StatValue): HTMLTableCellElement {
  const cell = el('td', {className: 'wh-num', text: formatNumber(value), attrs: {title: formatExact(value)}});
  if (isNonFinite(value)) cell.classList.add('nonfinite');
  if (value === null) cell.classList.add('missing');
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

export function createNormTable(handlers: {onToggle: (variable: string) => void}): NormTableView {
  const title = el('h2', {className: 'wh-title'});
  const head = el('thead', {}, [
    el('tr', {}, [
      el('th', {text: 'Layer'}),
      el('th', {text: 'Variable'}),
      ...TABLE_COLUMNS.map((c) => el('th', {className: 'wh-num', text: c.title, attrs: {title: c.stat}})),
    ]),
  ]);
  const body = el('tbody');
  const table = el('table', {className: 'wh-table', testId: 'norm-table'}, [head, body]);
  const hint = el('p', {className: 'wh-hint', text: 'Click a row to add its variable to the chart or remove it.'});
  const element = el('section', {className: 'wh-section'}, [title, table, hint]);

  // One listener for all rows: rows are rebuilt on every update.
  const rowVariable = (target: EventTarget | null): string | null => {
    const row = target instanceof Element ? target.closest('tr[data-variable]') : null;
    return row ? (row as HTMLElement).dataset.variable ?? null : null;
  };
  body.addEventListener('click', (event) => {
    const variable = rowVariable(event.target);
    if (variable !== null) handlers.onToggle(variable);
  });
  body.addEventListener('keydown', (event) => {
    if (event.key !== 'Enter' && event.key !== ' ') return;
    const variable = rowVariable(event.target);
    if (variable === null) return;
    event.preventDefault();
    handlers.onToggle(variable);
  });

  let shown: NormTable | null = null;

  const markCharted = (charted: ReadonlySet<string>, colorOf: (variable: string) => string) => {
    for (const tr of Array.from(body.querySelectorAll<HTMLTableRowElement>('tr[data-variable]'))) {
      const variable = tr.dataset.variable!;
      const selected = charted.has(variable);
      tr.classList.toggle('selected', selected);
      tr.setAttribute('aria-selected', String(selected));
      const swatch = tr.querySelector<HTMLElement>('.wh-swatch');
      if (swatch) swatch.style.background = selected ? colorOf(variable) : '';
    }
  };

  return {
    element,
    update(data, charted, colorOf) {
      element.hidden = data === null;
      // Same table, new selection: keep the rows (and keyboard focus).
      if (data !== null && data === shown) {
        markCharted(charted, colorOf);
        return;
      }
      shown = data;
      clear(body);
      if (!data) return;
      title.textContent = `Norms at step ${data.step}`;
      const columnIndex = TABLE_COLUMNS.map((c) => data.stats.indexOf(c.stat));
      for (const row of data.rows) {
        const tr = el('tr', {testId: 'norm-row', attrs: {tabindex: '0'}}, [
          el('td', {text: row.layer}),
          el('td', {className: 'wh-variable'}, [el('span', {className: 'wh-swatch'}), ...breakablePath(row.variable)]),
          ...columnIndex.map((i) => valueCell(i < 0 ? null : (row.values[i] ?? null))),
        ]);
        tr.dataset.variable = row.variable;
        body.appendChild(tr);
      }
      if (data.rows.length === 0) {
        const colspan = String(2 + TABLE_COLUMNS.length);
        body.appendChild(el('tr', {}, [el('td', {className: 'wh-none', text: 'No variables at this step.', attrs: {colspan}})]));
      }
      markCharted(charted, colorOf);
    },
  };
}
