// The stylesheets travel inside the bundle (TensorBoard's CSP allows no remote
// styles; inline <style> is allowed) and are added once to the iframe's <head>.

import uplotCss from 'uplot/dist/uPlot.min.css';
import layoutCss from './layout.css';
import ownCss from './style.css';
import themeCss from './theme.css';

const STYLE_ID = 'tb-weightnorm-style';

export function injectStyles(doc: Document = document): void {
  if (doc.getElementById(STYLE_ID)) return;
  const style = doc.createElement('style');
  style.id = STYLE_ID;
  style.textContent = `${uplotCss}\n${themeCss}\n${ownCss}\n${layoutCss}`;
  doc.head.appendChild(style);
}
