// The kernel grid of one conv variable: its filters as a PNG per logged step,
// with a slider over the images. The images are plain URLs, so sliding swaps
// the <img> source at once without asking the app to fetch anything.

import type {KernelGrid, KernelImage} from '../api/types';
import {formatNumber} from '../ui/format';
import {clear, el} from './dom';

export interface KernelGridView {
  element: HTMLElement;
  /** Shows the image at or before `step` (the latest when null), or `message` when `grid` is null. */
  update(grid: KernelGrid | null, options: {step: number | null; message?: string}): void;
  destroy(): void;
}

/** About how wide the image is shown: small PNGs are scaled up by a whole factor to near this. */
export const TARGET_WIDTH = 320;

/** The diverging ramp of tb_weightnorm/graph/kernel_grid.py (_ANCHOR_RGB), for the legend. */
const DIVERGING_RAMP = ['rgb(49,54,149)', 'rgb(116,173,209)', 'rgb(255,255,255)', 'rgb(244,109,67)', 'rgb(165,0,38)'];
const NAN_COLOUR = 'rgb(0,0,0)';
const INF_COLOUR = 'rgb(255,255,0)';

/** Index of the image at or before `step` (the first image when all are later); the latest for null. */
export function imageIndexAt(images: readonly KernelImage[], step: number | null): number {
  if (images.length === 0) return -1;
  if (step === null) return images.length - 1;
  let found = 0;
  images.forEach((image, i) => {
    if (image.step <= step) found = i;
  });
  return found;
}

/**
 * The whole factor a `width`-pixel image is scaled up by: as near TARGET_WIDTH
 * as a whole factor gets without passing it or the panel; 1 for an image
 * already wider (CSS then fits it to the panel).
 */
export function zoomFactor(width: number, panelWidth: number): number {
  const room = panelWidth > 0 ? Math.min(TARGET_WIDTH, panelWidth) : TARGET_WIDTH;
  return width > 0 ? Math.max(1, Math.floor(room / width)) : 1;
}

/** "4 of 16 filters, mode diverging, full colour at ±0.2995". */
export function describeImage(grid: KernelGrid, image: KernelImage): string {
  const scale = image.scale === null ? '' : `, full colour at \u00b1${formatNumber(image.scale, 4)}`;
  return `${image.filtersShown} of ${grid.filtersTotal} filters, mode ${grid.mode}${scale}`;
}

function loadImage(url: string): HTMLImageElement {
  const image = new Image();
  image.src = url;
  return image;
}

function swatch(colour: string, label: string): HTMLElement {
  const box = el('span', {className: 'wh-kernel-swatch'});
  box.style.background = colour;
  return el('span', {className: 'wh-kernel-key'}, [box, document.createTextNode(label)]);
}

/** Blue negative, white 0, red positive, and the marker colours of NaN and Inf. */
function divergingLegend(): HTMLElement {
  const ramp = el('span', {className: 'wh-kernel-ramp'});
  ramp.style.background = `linear-gradient(to right, ${DIVERGING_RAMP.join(', ')})`;
  return el('div', {className: 'wh-kernel-legend', testId: 'kernel-legend'}, [
    el('span', {className: 'wh-kernel-key'}, [
      el('span', {text: '\u2212'}),
      ramp,
      el('span', {text: '+'}),
      el('span', {className: 'wh-kernel-keytext', text: 'blue negative, white 0, red positive'}),
    ]),
    swatch(NAN_COLOUR, 'NaN'),
    swatch(INF_COLOUR, 'Inf'),
  ]);
}

/** In RGB mode the colours are the weights themselves; only the markers need a key. */
function rgbLegend(): HTMLElement {
  return el('div', {className: 'wh-kernel-legend', testId: 'kernel-legend'}, [
    el('span', {className: 'wh-kernel-keytext', text: 'each filter\u2019s 3 input channels as R, G, B (0 at mid grey)'}),
    swatch(NAN_COLOUR, 'NaN'),
    swatch(INF_COLOUR, 'Inf'),
  ]);
}

export function createKernelGrid(handlers: {onStep: (step: number) => void}): KernelGridView {
  const title = el('h2', {className: 'wh-title', text: 'Kernel grid'});
  const image = el('img', {className: 'wh-kernel-image', testId: 'kernel-image'});
  const frame = el('div', {className: 'wh-kernel-frame'}, [image]);
  const slider = el('input', {className: 'wh-kernel-slider', testId: 'kernel-step', attrs: {type: 'range', min: '0', step: '1'}});
  const stepLabel = el('span', {className: 'wh-kernel-steplabel', testId: 'kernel-step-label'});
  const controls = el('label', {className: 'wh-kernel-controls'}, [slider, stepLabel]);
  const info = el('p', {className: 'wh-hint', testId: 'kernel-info'});
  const legendBox = el('div');
  const message = el('p', {className: 'wh-hint', testId: 'kernel-message'});
  const body = el('div', {className: 'wh-kernel-body'}, [frame, controls, info, legendBox]);
  const element = el('section', {className: 'wh-section wh-kernel', testId: 'kernel-grid'}, [title, message, body]);
  let grid: KernelGrid | null = null;
  let shown = -1;
  // Neighbouring images loaded ahead so sliding does not wait on the network;
  // held here so they are not collected before the browser has them cached.
  let preloaded = new Map<string, HTMLImageElement>();

  const preload = (index: number) => {
    if (!grid || typeof Image === 'undefined') return;
    const urls = [index - 1, index + 1].filter((i) => i >= 0 && i < grid!.images.length).map((i) => grid!.images[i].url);
    preloaded = new Map(urls.map((url) => [url, preloaded.get(url) ?? loadImage(url)]));
  };

  const size = () => {
    const current = grid?.images[shown];
    if (!current) return;
    const factor = zoomFactor(current.width, frame.clientWidth);
    image.width = current.width * factor;
    image.height = current.height * factor;
  };

  const show = (index: number) => {
    if (!grid) return;
    const current = grid.images[index];
    shown = index;
    slider.value = String(index);
    stepLabel.textContent = `step ${current.step}`;
    // Set the same URL again and some browsers reload it: only on a change.
    if (image.getAttribute('src') !== current.url) image.src = current.url;
    image.alt = `kernel grid of ${grid.variable} at step ${current.step}`;
    info.textContent = describeImage(grid, current);
    size();
    preload(index);
  };

  slider.addEventListener('input', () => {
    const index = Number(slider.value);
    if (!grid || !(index >= 0 && index < grid.images.length) || index === shown) return;
    show(index);
    handlers.onStep(grid.images[index].step);
  });

  const resizer = typeof ResizeObserver === 'undefined' ? null : new ResizeObserver(size);
  resizer?.observe(frame);

  return {
    element,
    update(next, options) {
      const sameLegend = grid !== null && next !== null && grid.mode === next.mode;
      grid = next && next.images.length > 0 ? next : null;
      title.textContent = next ? `Kernel grid of ${next.variable} (run ${next.run})` : 'Kernel grid';
      const text = options.message ?? (next ? (grid ? '' : 'No kernel grid images logged yet.') : 'No kernel grid.');
      message.textContent = text;
      message.hidden = text === '';
      body.hidden = grid === null;
      if (!grid) {
        shown = -1;
        image.removeAttribute('src');
        clear(legendBox);
        return;
      }
      if (!sameLegend) {
        clear(legendBox);
        legendBox.appendChild(grid.mode === 'diverging' ? divergingLegend() : rgbLegend());
      }
      slider.max = String(grid.images.length - 1);
      slider.disabled = grid.images.length < 2;
      show(imageIndexAt(grid.images, options.step));
    },
    destroy() {
      resizer?.disconnect();
      preloaded.clear();
      grid = null;
    },
  };
}
