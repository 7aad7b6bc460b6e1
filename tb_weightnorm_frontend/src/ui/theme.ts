// Light and dark colours, and following TensorBoard's dark mode.
//
// TensorBoard themes only its own dashboards: its dark-mode toggle puts the
// class "dark-mode" on the host page's <body>. The tab's iframe is served from
// the same origin, so it can read that class and watch it change.

export interface Theme {
  dark: boolean;
  /** Text and axis labels. */
  text: string;
  /** Secondary text: axis titles, hints. */
  muted: string;
  /** Grid lines and tick marks. */
  grid: string;
  /** Panel background (what a canvas clears to). */
  background: string;
  /** Cells with no value (not measured). */
  missing: string;
  /** Cells that are NaN or infinite. */
  nonFinite: string;
}

export const LIGHT: Theme = {
  dark: false,
  text: '#212121',
  muted: '#616161',
  grid: '#eeeeee',
  background: '#ffffff',
  missing: '#f2f2f2',
  nonFinite: '#d50000',
};

export const DARK: Theme = {
  dark: true,
  text: '#e0e0e0',
  muted: '#a0a0a0',
  grid: '#3a3a3a',
  background: '#303030',
  missing: '#262626',
  nonFinite: '#ff5252',
};

export const DARK_MODE_CLASS = 'dark-mode';

/** The host page's <body>, or null outside TensorBoard or across origins. */
function hostBody(win: Window): HTMLElement | null {
  if (!win.parent || win.parent === win) return null;
  try {
    return win.parent.document.body;
  } catch {
    // A cross-origin parent (a page embedding TensorBoard elsewhere): no theme to follow.
    return null;
  }
}

/** True when the page hosting the tab is in TensorBoard's dark mode. */
export function hostIsDark(win: Window = window): boolean {
  return hostBody(win)?.classList.contains(DARK_MODE_CLASS) ?? false;
}

/**
 * Calls `onChange` with the theme now and whenever TensorBoard's dark mode is
 * switched; returns the function that stops watching.
 */
export function followHostTheme(onChange: (theme: Theme) => void, win: Window = window): () => void {
  const body = hostBody(win);
  let dark = body?.classList.contains(DARK_MODE_CLASS) ?? false;
  onChange(dark ? DARK : LIGHT);
  if (!body || typeof MutationObserver === 'undefined') return () => {};
  const observer = new MutationObserver(() => {
    const now = body.classList.contains(DARK_MODE_CLASS);
    if (now === dark) return;
    dark = now;
    onChange(dark ? DARK : LIGHT);
  });
  observer.observe(body, {attributes: true, attributeFilter: ['class']});
  return () => observer.disconnect();
}
