// A small client of TensorBoard's messaging with iframe plugins
// (tensorboard/components/experimental/plugin_util/message.ts on the host side).
//
// The plugin posts the string "experimental.bootstrap" to window.parent with a
// MessagePort; after that both sides exchange JSON strings of the shape
// {type, id, payload, error, isReply} over that port. Each side numbers its own
// requests; every request gets exactly one reply with the same type and id.
// TensorBoard broadcasts "experimental.DataReloaded" after each reload (the
// reload button and the periodic auto-reload) and waits for every plugin's reply.

export const BOOTSTRAP = 'experimental.bootstrap';
export const DATA_RELOADED = 'experimental.DataReloaded';
export const GET_URL_PLUGIN_DATA = 'experimental.GetURLPluginData';

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

  /** `port` is null outside TensorBoard: then nothing is ever received. */
  constructor(private readonly port: MessagePort | null) {
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
  return new HostClient(channel.port1);
}
