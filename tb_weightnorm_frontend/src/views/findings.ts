// The findings of the diagnosis, most severe first (the server sorts them).
// Names and messages go in as text, never as HTML.

import type {Finding} from '../api/types';
import {formatNumber} from '../ui/format';
import {clear, el} from './dom';

export interface FindingsView {
  element: HTMLElement;
  /** null: not loaded yet. */
  update(findings: Finding[] | null): void;
}

export const NO_FINDINGS = 'No findings: every rule of the diagnosis passed on the steps logged so far.';

function steps(f: Finding): string {
  const span = f.first_step === f.last_step ? `step ${f.first_step}` : `steps ${f.first_step}\u2013${f.last_step}`;
  return f.ongoing ? `${span}, ongoing` : span;
}

function item(f: Finding, onSelect: (f: Finding) => void): HTMLElement {
  const where = f.variable ? `${f.layer} \u00b7 ${f.variable}` : f.layer;
  const node = el('li', {className: `wh-finding ${f.severity}`, testId: 'finding', attrs: {tabindex: '0', role: 'button'}}, [
    el('div', {className: 'wh-finding-head'}, [
      el('span', {className: 'wh-severity', text: f.severity}),
      el('span', {className: 'wh-rule', text: f.rule}),
      el('span', {className: 'wh-where', text: where}),
      el('span', {className: 'wh-steps', text: steps(f)}),
      el('span', {className: 'wh-measured', text: `${formatNumber(f.value)} vs ${formatNumber(f.threshold)}`}),
    ]),
    el('div', {className: 'wh-message', text: f.message}),
  ]);
  node.dataset.severity = f.severity;
  node.dataset.layer = f.layer;
  node.addEventListener('click', () => onSelect(f));
  node.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' || event.key === ' ') onSelect(f);
  });
  return node;
}

export function createFindings(handlers: {onSelect: (f: Finding) => void}): FindingsView {
  const list = el('ul', {className: 'wh-finding-list'});
  const note = el('div', {className: 'wh-note'});
  const title = el('div', {className: 'wh-title', text: 'Findings'});
  const element = el('section', {className: 'wh-section wh-findings', testId: 'findings'}, [title, note, list]);
  let shown: Finding[] | null | undefined;
  return {
    element,
    update(findings) {
      if (findings === shown) return; // the app renders often; the list only changes with new findings
      shown = findings;
      clear(list);
      if (findings === null) {
        note.textContent = 'Diagnosing\u2026';
        title.textContent = 'Findings';
        return;
      }
      title.textContent = findings.length ? `Findings (${findings.length})` : 'Findings';
      note.textContent = findings.length ? '' : NO_FINDINGS;
      note.hidden = findings.length > 0;
      for (const f of findings) list.appendChild(item(f, handlers.onSelect));
    },
  };
}
