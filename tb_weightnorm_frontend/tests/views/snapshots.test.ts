// @vitest-environment happy-dom
import {describe, expect, it} from 'vitest';
import type {SnapshotDistance} from '../../src/api/types';
import {createSnapshots} from '../../src/views/snapshots';

const XSS = '<img src=x onerror=alert(1)>';

const distance: SnapshotDistance = {
  run: 'r',
  from: {epoch: 0, step: 0, wallTime: 0},
  to: {epoch: 3, step: 30, wallTime: 0},
  total: {distance: 1.234567, relative: 0.5, normFrom: 2.5, normTo: 2.6, nonFinite: 1},
  layers: [
    {
      layer: XSS,
      distance: 1.234567,
      relative: 0.5,
      normFrom: 2.5,
      normTo: 2.6,
      nonFinite: 1,
      variables: [{variable: `m/${XSS}/kernel`, shape: [2], distance: 1.234567, relative: NaN, normFrom: 0, normTo: 1, nonFinite: 1}],
    },
  ],
  unmatched: [{variable: 'm/new/kernel', reason: 'only in epoch 3'}],
};

const snapshots = [
  {epoch: 0, step: 0, wallTime: 0},
  {epoch: 3, step: 30, wallTime: 0},
];

function view() {
  const calls: string[] = [];
  const v = createSnapshots({onPick: (from, to) => calls.push(`pick ${from} ${to}`), onOpenLayer: (layer) => calls.push(`open ${layer}`)});
  return {v, calls};
}

describe('snapshots view', () => {
  it('is hidden without snapshots', () => {
    const {v} = view();
    v.update(null);
    expect(v.element.hidden).toBe(true);
    v.update({snapshots: [], pair: {from: 0, to: 0}, distance: null});
    expect(v.element.hidden).toBe(true);
  });

  it('shows names as text, distances with their exact value in the tooltip, and NaN/Inf counts', () => {
    const {v} = view();
    v.update({snapshots, pair: {from: 0, to: 3}, distance});
    expect(v.element.hidden).toBe(false);
    expect(v.element.querySelector('img')).toBeNull();
    const row = v.element.querySelector<HTMLElement>('[data-testid="snapshot-row"]')!;
    expect(row.dataset.layer).toBe(XSS);
    expect(row.querySelector('td')!.textContent).toBe(XSS);
    const cell = row.querySelector<HTMLElement>('[data-testid="snapshot-distance"]')!;
    expect(cell.textContent).toBe('1.235');
    expect(cell.title).toBe('1.234567');
    expect(row.classList.contains('has-nonfinite')).toBe(true);
    const variable = v.element.querySelector<HTMLElement>('[data-testid="snapshot-variable-row"]')!;
    expect(variable.dataset.variable).toBe(`m/${XSS}/kernel`);
    expect(variable.querySelector('[data-testid="snapshot-relative"]')!.textContent).toBe('NaN');
    const total = v.element.querySelector('[data-testid="snapshot-total"]')!.textContent;
    expect(total).toContain('From epoch 0 \u00b7 before training to epoch 3 \u00b7 step 30, the whole model moved 1.235 (0.5 of its norm)');
    expect(total).toContain('not compared: m/new/kernel (only in epoch 3)');
  });

  it('asks for the picked pair and opens a layer from its rows', () => {
    const {v, calls} = view();
    v.update({snapshots, pair: {from: 0, to: 3}, distance});
    const from = v.element.querySelector<HTMLSelectElement>('[data-testid="snapshot-from"]')!;
    expect(from.value).toBe('0');
    from.value = '3';
    from.dispatchEvent(new Event('change'));
    v.element.querySelector<HTMLElement>('[data-testid="snapshot-variable-row"] td')!.click();
    expect(calls).toEqual(['pick 3 3', `open ${XSS}`]);
  });

  it('says it is loading while the distances are on their way', () => {
    const {v} = view();
    v.update({snapshots, pair: {from: 0, to: 3}, distance: null, message: 'Loading\u2026'});
    expect(v.element.textContent).toContain('Loading\u2026');
    expect(v.element.querySelector<HTMLElement>('[data-testid="snapshot-table"]')!.hidden).toBe(true);
  });
});
