// "Weight snapshots": pick two snapshots of the run and see how far each layer
// (and each of its variables) moved between them. A click on a layer row opens it.

import type {SnapshotDistance, SnapshotInfo, StatValue} from '../api/types';
import {formatExact, formatNumber} from '../ui/format';
import {distanceRows, snapshotLabel, type SnapshotPair} from '../models/snapshot_model';
import {clear, el} from './dom';

export interface SnapshotsHandlers {
  onPick: (from: number, to: number) => void;
  onOpenLayer: (layer: string) => void;
}

export interface SnapshotsModel {
  /** The run's snapshots; the section hides when there are none. */
  snapshots: SnapshotInfo[];
  pair: SnapshotPair;
  /** The distances for `pair`; null while loading. */
  distance: SnapshotDistance | null;
  /** Why there is nothing to show (loading, an error). */
  message?: string;
}

export interface SnapshotsView {
  element: HTMLElement;
  /** null: the run has no snapshots (or they are not loaded yet). */
  update(model: SnapshotsModel | null): void;
}

/** The model's layers are named as Keras names them; the global row has this name. */
const MODEL_LAYER = '(model)';

function numberCell(value: StatValue, testId?: string): HTMLTableCellElement {
  const cell = el('td', {className: 'wh-num', text: formatNumber(value, 4), attrs: {title: formatExact(value)}, testId});
  if (value === null) cell.classList.add('missing');
  return cell;
}

function barCell(share: number): HTMLTableCellElement {
  const bar = el('div', {className: 'wh-distance-bar'});
  bar.style.width = `${(100 * share).toFixed(1)}%`;
  return el('td', {className: 'wh-distance-bar-cell'}, [bar]);
}

function picker(label: string, testId: string, onChange: () => void) {
  const select = el('select', {testId, attrs: {'aria-label': `${label} snapshot`}});
  select.addEventListener('change', onChange);
  return {select, element: el('label', {className: 'wh-field'}, [el('span', {text: label}), select])};
}

function fill(select: HTMLSelectElement, snapshots: SnapshotInfo[], chosen: number): void {
  clear(select);
  for (const s of snapshots) {
    const option = el('option', {text: snapshotLabel(s)});
    option.value = String(s.epoch);
    select.appendChild(option);
  }
  select.value = String(chosen);
}

const HEADERS = ['Layer / variable', '\u2016W_to \u2212 W_from\u2016', 'Relative', '', 'NaN/Inf'];

export function createSnapshots(handlers: SnapshotsHandlers): SnapshotsView {
  const pick = () => handlers.onPick(Number(from.select.value), Number(to.select.value));
  const from = picker('From', 'snapshot-from', pick);
  const to = picker('To', 'snapshot-to', pick);
  const total = el('p', {className: 'wh-hint', testId: 'snapshot-total'});
  const note = el('p', {className: 'wh-note'});
  const body = el('tbody');
  const table = el('table', {className: 'wh-table wh-snapshot-table', testId: 'snapshot-table'}, [
    el('thead', {}, [el('tr', {}, HEADERS.map((h, i) => el('th', {className: i > 0 && i !== 3 ? 'wh-num' : '', text: h})))]),
    body,
  ]);
  const element = el('section', {className: 'wh-section wh-snapshots', testId: 'snapshots'}, [
    el('div', {className: 'wh-section-head'}, [el('h2', {className: 'wh-title', text: 'Weight snapshots'}), from.element, to.element]),
    total,
    note,
    table,
  ]);
  element.hidden = true;

  const open = (target: EventTarget | null): boolean => {
    const row = target instanceof Element ? target.closest<HTMLElement>('tr[data-layer]') : null;
    const layer = row?.dataset.layer;
    if (!layer || layer === MODEL_LAYER) return false;
    handlers.onOpenLayer(layer);
    return true;
  };
  body.addEventListener('click', (event) => open(event.target));
  body.addEventListener('keydown', (event) => {
    if ((event.key === 'Enter' || event.key === ' ') && open(event.target)) event.preventDefault();
  });

  let drawn: SnapshotDistance | null | undefined;
  return {
    element,
    update(model) {
      element.hidden = model === null || model.snapshots.length === 0;
      if (model === null) return;
      fill(from.select, model.snapshots, model.pair.from);
      fill(to.select, model.snapshots, model.pair.to);
      note.textContent = model.message ?? '';
      note.hidden = !model.message;
      const distance = model.distance;
      table.hidden = distance === null;
      if (distance === drawn) return; // rebuilt only for a new answer: a model has up to thousands of rows
      drawn = distance;
      clear(body);
      if (distance === null) {
        total.textContent = '';
        return;
      }
      const t = distance.total;
      total.textContent =
        `From ${snapshotLabel(distance.from)} to ${snapshotLabel(distance.to)}, the whole model moved ` +
        `${formatNumber(t.distance, 4)} (${formatNumber(t.relative, 3)} of its norm)` +
        (distance.unmatched.length ? `; not compared: ${distance.unmatched.map((u) => `${u.variable} (${u.reason})`).join(', ')}` : '') +
        '.';
      for (const row of distanceRows(distance)) {
        const isLayer = row.kind === 'layer';
        const tr = el('tr', {testId: isLayer ? 'snapshot-row' : 'snapshot-variable-row', className: isLayer ? '' : 'wh-sub'}, [
          el('td', {className: isLayer ? '' : 'wh-variable', text: row.name}),
          numberCell(row.values.distance, 'snapshot-distance'),
          numberCell(row.values.relative, 'snapshot-relative'),
          barCell(row.bar),
          el('td', {className: 'wh-num', text: row.values.nonFinite > 0 ? `\u26a0 ${row.values.nonFinite}` : ''}),
        ]);
        // Every row opens its layer; a layer row is also reached with the keyboard.
        tr.dataset.layer = row.layer;
        if (isLayer) tr.tabIndex = 0;
        else tr.dataset.variable = row.name;
        if (row.values.nonFinite > 0) tr.classList.add('has-nonfinite');
        body.appendChild(tr);
      }
    },
  };
}
