// Header: the run selector and the stat selector.

import type {RunInfo} from '../api/types';
import {clear, el} from './dom';

export interface SelectorsView {
  element: HTMLElement;
  update(runs: readonly RunInfo[], run: string | null, stats: readonly string[], stat: string | null): void;
}

function fillOptions(select: HTMLSelectElement, groups: Map<string, string[]>, selected: string | null): void {
  clear(select);
  for (const [group, values] of groups) {
    const parent = group ? el('optgroup', {attrs: {label: group}}) : select;
    for (const value of values) {
      const option = el('option', {text: value});
      option.value = value;
      parent.appendChild(option);
    }
    if (parent !== select) select.appendChild(parent);
  }
  if (selected !== null) select.value = selected;
  select.disabled = select.options.length === 0;
}

/** Stats grouped by kind (weight, gradient, update), in the server's order. */
export function groupStats(stats: readonly string[]): Map<string, string[]> {
  const groups = new Map<string, string[]>();
  for (const stat of stats) {
    const slash = stat.indexOf('/');
    const kind = slash > 0 ? stat.slice(0, slash) : '';
    if (!groups.has(kind)) groups.set(kind, []);
    groups.get(kind)!.push(stat);
  }
  return groups;
}

/** A tooltip for a run, from whichever counts the server sent. */
export function describeRun(info: RunInfo): string {
  const parts: string[] = [];
  if (info.steps !== null) parts.push(`${info.steps} logged steps`);
  if (info.first_step !== null && info.last_step !== null) parts.push(`steps ${info.first_step}\u2013${info.last_step}`);
  else if (info.last_step !== null) parts.push(`last step ${info.last_step}`);
  if (info.variables !== null) parts.push(`${info.variables} variables`);
  return parts.join(', ');
}

export function createSelectors(handlers: {
  onRun: (run: string) => void;
  onStat: (stat: string) => void;
}): SelectorsView {
  const runSelect = el('select', {testId: 'run-select', attrs: {'aria-label': 'Run'}});
  const statSelect = el('select', {testId: 'stat-select', attrs: {'aria-label': 'Stat'}});
  runSelect.addEventListener('change', () => handlers.onRun(runSelect.value));
  statSelect.addEventListener('change', () => handlers.onStat(statSelect.value));

  const element = el('div', {className: 'wh-header'}, [
    el('label', {className: 'wh-field'}, [el('span', {text: 'Run'}), runSelect]),
    el('label', {className: 'wh-field'}, [el('span', {text: 'Stat'}), statSelect]),
  ]);

  return {
    element,
    update(runs, run, stats, stat) {
      fillOptions(runSelect, new Map([['', runs.map((r) => r.run)]]), run);
      const info = runs.find((r) => r.run === run);
      runSelect.title = info ? describeRun(info) : '';
      fillOptions(statSelect, groupStats(stats), stat);
    },
  };
}
