// A small client of TensorBoard's messaging with iframe plugins
// (tensorboard/components/experimental/plugin_util/message.ts on the host side).
//
// The plugin posts the string "experimental.bootstrap" to window.parent with a
// MessagePort; after that both sides exchange JSON strings of the shape
// {type, id, payload, error, isReply} over that port. Each side numbers its own
// requests; every request gets exactly one reply with the same type and id.
// TensorBoard broadcasts "experimental.DataReloaded" after each reload (the
// reload button and the periodic auto-reload) and waits for every plugin's reply.
//
// TensorBoard's run list comes from "experimental.GetRuns" and, when it changes,
// "experimental.RunsChanged" (runs-host-impl.ts). A link's plugin state lives in
// the host page's URL hash as "&p.<plugin>.<key>=<value>" (tf_storage); the host
// offers only to read it (GetURLPluginData), so the tab writes it itself: the
// iframe is same-origin with the host page.

export const BOOTSTRAP = 'experimental.bootstrap';
export const DATA_RELOADED = 'experimental.DataReloaded';
export const GET_URL_PLUGIN_DATA = 'experimental.GetURLPluginData';
export const GET_RUNS = 'experimental.GetRuns';
export const RUNS_CHANGED = 'experimental.RunsChanged';

/** The plugin's name, as in tb_weightnorm/wire/metadata.py: its URL keys are p.weight_health.*. */
export const PLUGIN_NAME = 'weight_health';

export interface HostMessage {
  type: string;
  id: number;
  payload?: unknown;
  error: string | null;
  isReply: boolean;
}

export type HostListener = (payload: unknown) => unknown;

/** Parses one message from the port; null for anything that is not one of ours. */
export function parseHostMessage(data: unknown): HostMessage | null {
  if (typeof data !== 'string') return null;
  let message: unknown;
  try {
    message = JSON.parse(data);
  } catch {
    return null;
  }
  if (!message || typeof message !== 'object') return null;
  const m = message as Record<string, unknown>;
  if (typeof m.type !== 'string' || typeof m.id !== 'number') return null;
  return {
    type: m.type,
    id: m.id,
    payload: m.payload,
    error: typeof m.error === 'string' && m.error ? m.error : null,
    isReply: m.isReply === true,
  };
}

interface Pending {
  resolve: (payload: unknown) => void;
  reject: (error: Error) => void;
}

export class HostClient {
  private nextId = 0;
  private readonly pending = new Map<number, Pending>();
  private readonly listeners = new Map<string, Set<HostListener>>();
  private readonly onPortMessage = (event: MessageEvent) => void this.handle(event.data);

  /**
   * `port` is null outside TensorBoard: then nothing is ever received.
   * `hostWindow` is the page hosting the tab (for its URL), when reachable.
   */
  constructor(
    private readonly port: MessagePort | null,
    private readonly hostWindow: Window | null = null,
  ) {
    if (port) {
      port.addEventListener('message', this.onPortMessage as EventListener);
      port.start();
    }
  }

  get connected(): boolean {
    return this.port !== null;
  }

  /** Subscribes to host messages of one type; returns the unsubscribe function. */
  listen(type: string, listener: HostListener): () => void {
    let set = this.listeners.get(type);
    if (!set) {
      set = new Set();
      this.listeners.set(type, set);
    }
    set.add(listener);
    return () => void set.delete(listener);
  }

  /** Calls `callback` after each TensorBoard data reload. */
  onDataReloaded(callback: () => void): () => void {
    return this.listen(DATA_RELOADED, () => {
      callback();
    });
  }

  /** TensorBoard's run names, or null outside TensorBoard or when it cannot say. */
  async getRuns(): Promise<string[] | null> {
    if (!this.port) return null;
    try {
      return runNames(await this.sendMessage(GET_RUNS));
    } catch {
      return null;
    }
  }

  /** Calls `callback` with TensorBoard's run names whenever its run list changes. */
  onRunsChanged(callback: (runs: string[]) => void): () => void {
    return this.listen(RUNS_CHANGED, (payload) => {
      const runs = runNames(payload);
      if (runs) callback(runs);
    });
  }

  /** The tab's keys in the host page's URL (p.weight_health.* without the prefix). */
  async readUrlData(): Promise<Record<string, string>> {
    const hash = this.hostHash();
    if (hash !== null) return pluginDataFromHash(hash, PLUGIN_NAME);
    if (!this.port) return {};
    try {
      const payload = await this.sendMessage(GET_URL_PLUGIN_DATA, {pluginName: PLUGIN_NAME});
      return stringRecord(payload);
    } catch {
      return {};
    }
  }

  /**
   * Puts the tab's keys into the host page's URL, replacing the history entry
   * (each click is not a step for the back button) and keeping TensorBoard's own keys.
   */
  writeUrlData(data: Readonly<Record<string, string>>): void {
    const hash = this.hostHash();
    if (hash === null || !this.hostWindow) return;
    const next = hashWithPluginData(hash, PLUGIN_NAME, data);
    if (next === hash) return;
    try {
      const url = new URL(this.hostWindow.location.href);
      url.hash = next;
      this.hostWindow.history.replaceState(this.hostWindow.history.state, '', url.toString());
    } catch {
      // A host page we may not touch: the link just does not carry the state.
    }
  }

  private hostHash(): string | null {
    if (!this.hostWindow) return null;
    try {
      return this.hostWindow.location.hash.replace(/^#/, '');
    } catch {
      return null;
    }
  }

  /** Sends a request to the host; resolves with the payload of its reply. */
  sendMessage(type: string, payload: unknown = null): Promise<unknown> {
    if (!this.port) return Promise.reject(new Error('not running inside TensorBoard'));
    const id = this.nextId++;
    const reply = new Promise<unknown>((resolve, reject) => {
      this.pending.set(id, {resolve, reject});
    });
    this.post({type, id, payload, error: null, isReply: false});
    return reply;
  }

  close(): void {
    if (!this.port) return;
    this.port.removeEventListener('message', this.onPortMessage as EventListener);
    this.port.close();
    for (const {reject} of this.pending.values()) reject(new Error('host connection closed'));
    this.pending.clear();
  }

  private post(message: HostMessage): void {
    this.port?.postMessage(JSON.stringify(message));
  }

  private async handle(data: unknown): Promise<void> {
    const message = parseHostMessage(data);
    if (!message) return;

    if (message.isReply) {
      const pending = this.pending.get(message.id);
      if (!pending) return;
      this.pending.delete(message.id);
      if (message.error) pending.reject(new Error(message.error));
      else pending.resolve(message.payload ?? null);
      return;
    }

    // Always reply, even without a listener: the host awaits one reply per plugin.
    let payload: unknown = null;
    let error: string | null = null;
    for (const listener of [...(this.listeners.get(message.type) ?? [])]) {
      try {
        const result = await listener(message.payload);
        if (result !== undefined) payload = result;
      } catch (e) {
        error = e instanceof Error ? e.message : String(e);
      }
    }
    this.post({type: message.type, id: message.id, payload, error, isReply: true});
  }
}

function runNames(payload: unknown): string[] | null {
  return Array.isArray(payload) ? payload.map(String) : null;
}

function stringRecord(payload: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (payload && typeof payload === 'object' && !Array.isArray(payload)) {
    for (const [key, value] of Object.entries(payload)) if (typeof value === 'string') out[key] = value;
  }
  return out;
}

function decodeComponent(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/**
 * The hash's parts as TensorBoard's tf_storage reads them: "tab&key=value&...",
 * a part without "=" being the tab's name.
 */
function hashParts(hash: string): {tab: string | null; entries: [string, string][]} {
  let tab: string | null = null;
  const entries: [string, string][] = [];
  for (const token of hash.split('&')) {
    if (token === '') continue;
    const kv = token.split('=');
    if (kv.length === 1) tab = kv[0];
    else if (kv.length === 2) entries.push([decodeComponent(kv[0]), decodeComponent(kv[1])]);
  }
  return {tab, entries};
}

/** The keys of `plugin` in a host URL hash (without "#"), without their "p.<plugin>." prefix. */
export function pluginDataFromHash(hash: string, plugin: string): Record<string, string> {
  const prefix = `p.${plugin}.`;
  const out: Record<string, string> = {};
  for (const [key, value] of hashParts(hash).entries) {
    if (key.startsWith(prefix)) out[key.slice(prefix.length)] = value;
  }
  return out;
}

/** `hash` with the keys of `plugin` replaced by `data`, the tab and other keys kept in order. */
export function hashWithPluginData(hash: string, plugin: string, data: Readonly<Record<string, string>>): string {
  const prefix = `p.${plugin}.`;
  const {tab, entries} = hashParts(hash);
  const kept = entries.filter(([key]) => !key.startsWith(prefix));
  const ours = Object.entries(data).map(([key, value]): [string, string] => [prefix + key, value]);
  const encoded = [...kept, ...ours].map(([key, value]) => `${encodeURIComponent(key)}=${encodeURIComponent(value)}`);
  return [tab ?? plugin, ...encoded].join('&');
}

/**
 * Connects to the TensorBoard page that hosts this iframe. Outside an iframe
 * (window.parent === window) it returns a client that never receives anything.
 */
export function connectToHost(win: Window = window): HostClient {
  const parent = win.parent;
  if (!parent || parent === win) return new HostClient(null);
  const channel = new MessageChannel();
  try {
    parent.postMessage(BOOTSTRAP, '*', [channel.port2]);
  } catch {
    channel.port1.close();
    return new HostClient(null);
  }
  let hostWindow: Window | null = null;
  try {
    // Reading the location throws for a cross-origin parent: then the URL is not ours to use.
    void parent.location.hash;
    hostWindow = parent;
  } catch {
    hostWindow = null;
  }
  return new HostClient(channel.port1, hostWindow);
}
