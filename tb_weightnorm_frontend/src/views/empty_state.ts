// Shown when no run has Weight Health data.

import {el} from './dom';

export const EMPTY_MESSAGE =
  'No Weight Health data yet. Log with tb_weightnorm.WeightHealthCallback or tb_weightnorm.log().';

export function createEmptyState(): HTMLElement {
  const element = el('div', {className: 'wh-empty', testId: 'empty', text: EMPTY_MESSAGE});
  element.hidden = true;
  return element;
}
