// Entry point: TensorBoard's plugin_entry.html imports this module and calls render().

import {App} from './app';
import {createDataClient} from './api/client';
import {connectToHost} from './host/client';
import {injectStyles} from './ui/styles';
import {followHostTheme} from './ui/theme';

export function render(): void {
  injectStyles();
  const root = document.createElement('div');
  document.body.appendChild(root);
  const app = new App(root, {data: createDataClient(), host: connectToHost(), followTheme: followHostTheme});
  // The reload button reaches the iframe as DataReloaded; the app re-fetches on it.
  void app.start();
}
