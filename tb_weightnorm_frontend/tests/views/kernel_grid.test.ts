// @vitest-environment happy-dom
import {describe, expect, it} from 'vitest';
import type {KernelGrid, KernelImage} from '../../src/api/types';
import {createKernelGrid, imageIndexAt, zoomFactor} from '../../src/views/kernel_grid';

const XSS = '<img src=x onerror=alert(1)>';

function image(step: number): KernelImage {
  return {step, wallTime: 0, width: 26, height: 20, scale: 0.2995, filtersShown: 4, url: `kernel_image?run=r&variable=v&step=${step}`};
}

const GRID: KernelGrid = {
  run: XSS,
  variable: 'cnn/conv/kernel',
  layer: 'conv',
  mode: 'diverging',
  filtersTotal: 16,
  images: [image(0), image(4), image(50), image(51)],
};

function parts(root: HTMLElement) {
  const q = <T extends HTMLElement>(id: string) => root.querySelector<T>(`[data-testid="${id}"]`)!;
  return {
    image: q<HTMLImageElement>('kernel-image'),
    slider: q<HTMLInputElement>('kernel-step'),
    label: q('kernel-step-label'),
    info: q('kernel-info'),
    message: q('kernel-message'),
  };
}

function slide(slider: HTMLInputElement, index: number): void {
  slider.value = String(index);
  slider.dispatchEvent(new Event('input'));
}

describe('kernel grid helpers', () => {
  it('picks the image at or before a step, the latest for null', () => {
    const images = GRID.images;
    expect(imageIndexAt(images, null)).toBe(3);
    expect(imageIndexAt(images, 4)).toBe(1);
    expect(imageIndexAt(images, 49)).toBe(1);
    expect(imageIndexAt(images, 1000)).toBe(3);
    expect(imageIndexAt([image(5)], 2)).toBe(0);
    expect(imageIndexAt([], 2)).toBe(-1);
  });

  it('scales up by a whole factor to about 320 px, never past the panel', () => {
    expect(zoomFactor(26, 1000)).toBe(12);
    expect(zoomFactor(26, 200)).toBe(7);
    expect(zoomFactor(26, 0)).toBe(12);
    expect(zoomFactor(500, 1000)).toBe(1);
  });
});

describe('kernel grid view', () => {
  it('shows the image at the chosen step with its step, filters and scale', () => {
    const view = createKernelGrid({onStep: () => {}});
    view.update(GRID, {step: 10});
    const p = parts(view.element);
    expect(view.element.dataset.testid).toBe('kernel-grid');
    expect(p.image.getAttribute('src')).toBe(GRID.images[1].url);
    expect(p.image.width).toBe(26 * 12);
    expect(p.image.height).toBe(20 * 12);
    expect(p.slider.type).toBe('range');
    expect(p.slider.max).toBe('3');
    expect(p.slider.value).toBe('1');
    expect(p.label.textContent).toBe('step 4');
    expect(p.info.textContent).toBe('4 of 16 filters, mode diverging, full colour at \u00b10.2995');
    expect(view.element.querySelector('[data-testid="kernel-legend"]')!.textContent).toContain('blue negative, white 0, red positive');
  });

  it('shows the latest image when no step is chosen', () => {
    const view = createKernelGrid({onStep: () => {}});
    view.update(GRID, {step: null});
    expect(parts(view.element).image.getAttribute('src')).toBe(GRID.images[3].url);
  });

  it('swaps the image at once when the slider moves, and reports the step', () => {
    const steps: number[] = [];
    const view = createKernelGrid({onStep: (step) => steps.push(step)});
    view.update(GRID, {step: null});
    const p = parts(view.element);
    slide(p.slider, 2);
    expect(p.image.getAttribute('src')).toBe(GRID.images[2].url);
    expect(p.label.textContent).toBe('step 50');
    expect(steps).toEqual([50]);
    // The app answers with that step: the same image stays.
    view.update(GRID, {step: 50});
    expect(p.image.getAttribute('src')).toBe(GRID.images[2].url);
    expect(steps).toEqual([50]);
  });

  it('shows names as text only', () => {
    const view = createKernelGrid({onStep: () => {}});
    view.update(GRID, {step: null});
    const images = Array.from(view.element.querySelectorAll('img'));
    expect(images).toEqual([parts(view.element).image]);
    expect(view.element.querySelector('h2')!.textContent).toContain(XSS);
  });

  it('shows a message and no image when there is no grid', () => {
    const view = createKernelGrid({onStep: () => {}});
    view.update(GRID, {step: null});
    view.update(null, {step: null, message: 'No kernel grid for this layer.'});
    const p = parts(view.element);
    expect(p.message.textContent).toBe('No kernel grid for this layer.');
    expect(p.message.hidden).toBe(false);
    expect(p.image.hasAttribute('src')).toBe(false);
    expect(view.element.querySelector<HTMLElement>('.wh-kernel-body')!.hidden).toBe(true);
    view.update(null, {step: null});
    expect(p.message.textContent).toBe('No kernel grid.');
    view.destroy();
  });
});
