// The status line: loading notes and errors (errors are shown, never thrown).

import {el} from './dom';

export interface StatusView {
  element: HTMLElement;
  info(message: string): void;
  error(message: string): void;
  clear(): void;
}

export function createStatus(): StatusView {
  const element = el('div', {className: 'wh-status', testId: 'status', attrs: {role: 'status', 'aria-live': 'polite'}});
  const show = (message: string, isError: boolean) => {
    element.textContent = message;
    element.classList.toggle('error', isError);
    element.hidden = message === '';
  };
  show('', false);
  return {
    element,
    info: (message) => show(message, false),
    error: (message) => show(message, true),
    clear: () => show('', false),
  };
}
