// The host side here speaks TensorBoard's wire format by hand over a real MessageChannel.
import {afterEach, describe, expect, it} from 'vitest';
import {
  BOOTSTRAP,
  connectToHost,
  DATA_RELOADED,
  GET_RUNS,
  GET_URL_PLUGIN_DATA,
  hashWithPluginData,
  HostClient,
  parseHostMessage,
  pluginDataFromHash,
  PLUGIN_NAME,
  RUNS_CHANGED,
  type HostMessage,
} from '../../src/host/client';

/** The TensorBoard end of a channel: sends raw strings, collects what the plugin sends. */
class FakeHost {
  readonly received: HostMessage[] = [];
  private waiters: (() => void)[] = [];
  constructor(readonly port: MessagePort) {
    port.addEventListener('message', ((event: MessageEvent) => {
      this.received.push(JSON.parse(event.data as string));
      this.waiters.splice(0).forEach((w) => w());
    }) as EventListener);
    port.start();
  }
  send(message: Partial<HostMessage> | string): void {
    this.port.postMessage(typeof message === 'string' ? message : JSON.stringify(message));
  }
  /** Resolves once `count` messages have arrived. */
  async receive(count: number): Promise<HostMessage[]> {
    while (this.received.length < count) await new Promise<void>((r) => this.waiters.push(r));
    return this.received;
  }
}

const toClose: {close(): void}[] = [];
function pair(hostWindow: Window | null = null): {client: HostClient; host: FakeHost} {
  const channel = new MessageChannel();
  const client = new HostClient(channel.port1, hostWindow);
  const host = new FakeHost(channel.port2);
  toClose.push(client, channel.port2);
  return {client, host};
}

afterEach(() => {
  toClose.splice(0).forEach((c) => c.close());
});

describe('parseHostMessage', () => {
  it('reads the JSON message shape', () => {
    const m = parseHostMessage(JSON.stringify({type: 't', id: 3, payload: [1], error: null, isReply: true}));
    expect(m).toEqual({type: 't', id: 3, payload: [1], error: null, isReply: true});
  });

  it('ignores what is not a message', () => {
    expect(parseHostMessage('experimental.bootstrap')).toBeNull();
    expect(parseHostMessage('{"id": 1}')).toBeNull();
    expect(parseHostMessage({type: 't', id: 1})).toBeNull();
    expect(parseHostMessage('null')).toBeNull();
  });
});

describe('HostClient', () => {
  it('calls onDataReloaded and replies with the same type and id', async () => {
    const {client, host} = pair();
    let reloads = 0;
    client.onDataReloaded(() => reloads++);
    // TensorBoard broadcasts `void {}` as the payload, which JSON leaves out.
    host.send({type: DATA_RELOADED, id: 7, error: null, isReply: false});
    const [reply] = await host.receive(1);
    expect(reloads).toBe(1);
    expect(reply).toEqual({type: DATA_RELOADED, id: 7, payload: null, error: null, isReply: true});
  });

  it('replies to messages nobody listens to, so the host does not wait forever', async () => {
    const {host} = pair();
    host.send({type: 'experimental.RunsChanged', id: 0, payload: ['a'], error: null, isReply: false});
    const [reply] = await host.receive(1);
    expect(reply).toMatchObject({type: 'experimental.RunsChanged', id: 0, payload: null, isReply: true});
  });

  it('stops calling a listener after unsubscribing', async () => {
    const {client, host} = pair();
    let reloads = 0;
    const unsubscribe = client.onDataReloaded(() => reloads++);
    host.send({type: DATA_RELOADED, id: 0, error: null, isReply: false});
    await host.receive(1);
    unsubscribe();
    host.send({type: DATA_RELOADED, id: 1, error: null, isReply: false});
    await host.receive(2);
    expect(reloads).toBe(1);
  });

  it('sends an error reply when a listener throws', async () => {
    const {client, host} = pair();
    client.listen('x', () => {
      throw new Error('boom');
    });
    host.send({type: 'x', id: 4, error: null, isReply: false});
    const [reply] = await host.receive(1);
    expect(reply).toMatchObject({id: 4, error: 'boom', isReply: true});
  });

  it('resolves a request with the payload of its reply', async () => {
    const {client, host} = pair();
    const answer = client.sendMessage('experimental.GetURLPluginData');
    const [request] = await host.receive(1);
    expect(request).toMatchObject({type: 'experimental.GetURLPluginData', isReply: false, error: null});
    host.send({type: request.type, id: request.id, payload: {run: 'a'}, error: null, isReply: true});
    await expect(answer).resolves.toEqual({run: 'a'});
  });

  it('numbers requests and rejects on an error reply', async () => {
    const {client, host} = pair();
    const first = client.sendMessage('a');
    const second = client.sendMessage('b');
    const [r1, r2] = await host.receive(2);
    expect(r2.id).toBe(r1.id + 1);
    host.send({type: 'b', id: r2.id, payload: null, error: 'no such thing', isReply: true});
    host.send({type: 'a', id: r1.id, payload: 1, error: null, isReply: true});
    await expect(second).rejects.toThrow('no such thing');
    await expect(first).resolves.toBe(1);
  });

  it('survives malformed messages', async () => {
    const {client, host} = pair();
    let reloads = 0;
    client.onDataReloaded(() => reloads++);
    host.send('not json');
    host.send('{"type": 5}');
    host.send({type: DATA_RELOADED, id: 1, error: null, isReply: false});
    await host.receive(1);
    expect(reloads).toBe(1);
    expect(host.received).toHaveLength(1);
  });

  it('rejects pending requests when closed', async () => {
    const channel = new MessageChannel();
    toClose.push(channel.port2);
    const client = new HostClient(channel.port1);
    const pending = client.sendMessage('a');
    client.close();
    await expect(pending).rejects.toThrow(/closed/);
  });
});

describe('connectToHost', () => {
  it('does nothing outside an iframe', async () => {
    const win = {} as {parent: unknown};
    win.parent = win;
    const client = connectToHost(win as unknown as Window);
    expect(client.connected).toBe(false);
    expect(() => client.onDataReloaded(() => {})).not.toThrow();
    await expect(client.sendMessage('a')).rejects.toThrow(/not running inside TensorBoard/);
  });

  it('bootstraps with a port posted to the parent', async () => {
    const posted: {message: unknown; origin: string; transfer: MessagePort[]}[] = [];
    const parent = {
      postMessage(message: unknown, origin: string, transfer: MessagePort[]) {
        posted.push({message, origin, transfer});
      },
    };
    const client = connectToHost({parent} as unknown as Window);
    toClose.push(client);
    expect(client.connected).toBe(true);
    expect(posted).toHaveLength(1);
    expect(posted[0].message).toBe(BOOTSTRAP);
    expect(posted[0].message).toBe('experimental.bootstrap');
    expect(posted[0].transfer).toHaveLength(1);

    // The transferred port is the host's end: DataReloaded sent on it reaches the client.
    const host = new FakeHost(posted[0].transfer[0]);
    toClose.push(host.port);
    let reloads = 0;
    client.onDataReloaded(() => reloads++);
    host.send({type: DATA_RELOADED, id: 0, error: null, isReply: false});
    await host.receive(1);
    expect(reloads).toBe(1);
  });

  it('falls back to no host when posting to the parent fails', () => {
    const parent = {
      postMessage() {
        throw new Error('blocked');
      },
    };
    expect(connectToHost({parent} as unknown as Window).connected).toBe(false);
  });
});

/** Values a link must carry unchanged: the hash's separators, escapes, unicode and markup. */
const AWKWARD = {
  run: 'lr=0.1&bs=32',
  layer: '100% #1 ?x',
  hide: JSON.stringify(['a,b', 'say "hi"', 'Läufe/日本語 🚀', '<img src=x onerror=alert(1)>']),
  filter: '%41%',
};

describe('pluginDataFromHash', () => {
  it("reads this plugin's keys without their prefix", () => {
    const hash = 'weight_health&_smoothingWeight=0.6&p.weight_health.run=a&p.weight_health.view=layer&p.images.run=b';
    expect(pluginDataFromHash(hash, 'weight_health')).toEqual({run: 'a', view: 'layer'});
    expect(pluginDataFromHash(hash, 'images')).toEqual({run: 'b'});
  });

  it('decodes URI-encoded keys and values', () => {
    const hash = 'weight_health&p.weight_health.run=my%20run%26x%3D1&p%2Eweight_health%2Elayer=%E6%97%A5';
    expect(pluginDataFromHash(hash, 'weight_health')).toEqual({run: 'my run&x=1', layer: '日'});
  });

  it('reads nothing from an empty hash or one without our keys', () => {
    expect(pluginDataFromHash('', 'weight_health')).toEqual({});
    expect(pluginDataFromHash('scalars&tagFilter=loss', 'weight_health')).toEqual({});
    // "weight_healthy" is another plugin, not ours.
    expect(pluginDataFromHash('p.weight_healthy.run=a&p.weight_health=b', 'weight_health')).toEqual({});
  });

  it('keeps a value with a stray "%" as it is rather than failing', () => {
    expect(pluginDataFromHash('x&p.weight_health.filter=100%', 'weight_health')).toEqual({filter: '100%'});
  });
});

describe('hashWithPluginData', () => {
  it("replaces our keys and keeps the tab and everyone else's keys in order", () => {
    const hash = 'weight_health&_smoothingWeight=0.6&p.weight_health.run=old&p.weight_health.step=3&p.images.run=b';
    expect(hashWithPluginData(hash, 'weight_health', {run: 'new', view: 'layer'})).toBe(
      'weight_health&_smoothingWeight=0.6&p.images.run=b&p.weight_health.run=new&p.weight_health.view=layer',
    );
  });

  it('removes all our keys for empty data', () => {
    expect(hashWithPluginData('weight_health&p.weight_health.run=a&regexInput=x', 'weight_health', {})).toBe(
      'weight_health&regexInput=x',
    );
  });

  it('names the tab when the hash has none', () => {
    expect(hashWithPluginData('', 'weight_health', {run: 'a'})).toBe('weight_health&p.weight_health.run=a');
  });

  it('keeps the keys of others readable after its own re-encoding', () => {
    const hash = 'weight_health&p.images.run=a%26b&tagFilter=%5Eloss';
    const next = hashWithPluginData(hash, 'weight_health', {run: 'r'});
    expect(pluginDataFromHash(next, 'images')).toEqual({run: 'a&b'});
    expect(next).toContain('tagFilter=%5Eloss');
  });

  it('round-trips names with & = % # and unicode through both functions', () => {
    const next = hashWithPluginData('weight_health&_smoothingWeight=0.6', 'weight_health', AWKWARD);
    expect(pluginDataFromHash(next, 'weight_health')).toEqual(AWKWARD);
    // Only the separators are left bare: one "&" per key, one "=" each, and no "#".
    expect(next.split('&')).toHaveLength(Object.keys(AWKWARD).length + 2);
    expect(next.split('=')).toHaveLength(Object.keys(AWKWARD).length + 2);
    expect(next).not.toContain('#');
  });
});

/** The host page as the client sees it: its URL and its history. */
function fakeHostWindow(hash: string, base = 'http://localhost:6006/?darkMode=true') {
  const replaced: {state: unknown; url: string}[] = [];
  const historyState = {tensorboard: 'state'};
  const win = {
    location: {hash: hash ? `#${hash}` : '', href: hash ? `${base}#${hash}` : base},
    history: {
      state: historyState,
      replaceState(state: unknown, _title: string, url: string) {
        replaced.push({state, url});
        win.location.href = url;
        win.location.hash = new URL(url).hash;
      },
    },
  };
  return {hostWindow: win as unknown as Window, replaced, historyState, location: win.location};
}

describe('HostClient and TensorBoard run list', () => {
  it('asks the host for its runs', async () => {
    const {client, host} = pair();
    const runs = client.getRuns();
    const [request] = await host.receive(1);
    expect(request).toMatchObject({type: GET_RUNS, isReply: false});
    host.send({type: GET_RUNS, id: request.id, payload: ['train', 'eval'], error: null, isReply: true});
    await expect(runs).resolves.toEqual(['train', 'eval']);
  });

  it('has no run list outside TensorBoard, on an error reply, or on a reply that is no list', async () => {
    await expect(new HostClient(null).getRuns()).resolves.toBeNull();

    const {client, host} = pair();
    const failed = client.getRuns();
    const odd = client.getRuns();
    const [r1, r2] = await host.receive(2);
    host.send({type: GET_RUNS, id: r1.id, payload: null, error: 'not ready', isReply: true});
    host.send({type: GET_RUNS, id: r2.id, payload: {runs: ['a']}, error: null, isReply: true});
    await expect(failed).resolves.toBeNull();
    await expect(odd).resolves.toBeNull();
  });

  it('passes a changed run list on and replies to the host', async () => {
    const {client, host} = pair();
    const seen: string[][] = [];
    client.onRunsChanged((runs) => seen.push(runs));
    host.send({type: RUNS_CHANGED, id: 5, payload: ['b', 'a'], error: null, isReply: false});
    const [reply] = await host.receive(1);
    expect(seen).toEqual([['b', 'a']]);
    expect(reply).toMatchObject({type: RUNS_CHANGED, id: 5, error: null, isReply: true});
  });

  it('ignores a run change that carries no list, and still replies', async () => {
    const {client, host} = pair();
    const seen: string[][] = [];
    client.onRunsChanged((runs) => seen.push(runs));
    host.send({type: RUNS_CHANGED, id: 1, payload: 'a', error: null, isReply: false});
    const [reply] = await host.receive(1);
    expect(seen).toEqual([]);
    expect(reply).toMatchObject({id: 1, isReply: true});
  });
});

describe('HostClient and the host URL', () => {
  it("reads the plugin's keys from the host page's hash, without asking the host", async () => {
    const {hostWindow} = fakeHostWindow('weight_health&p.weight_health.run=a%20b&p.weight_health.step=3&x=1');
    const {client, host} = pair(hostWindow);
    await expect(client.readUrlData()).resolves.toEqual({run: 'a b', step: '3'});
    expect(host.received).toEqual([]);
    await expect(new HostClient(null, hostWindow).readUrlData()).resolves.toEqual({run: 'a b', step: '3'});
  });

  it('asks the host with GetURLPluginData when it cannot read the page, keeping the string values', async () => {
    const {client, host} = pair();
    const data = client.readUrlData();
    const [request] = await host.receive(1);
    expect(request).toMatchObject({type: GET_URL_PLUGIN_DATA, payload: {pluginName: PLUGIN_NAME}, isReply: false});
    host.send({type: GET_URL_PLUGIN_DATA, id: request.id, payload: {run: 'a', step: '3', odd: 5}, error: null, isReply: true});
    await expect(data).resolves.toEqual({run: 'a', step: '3'});
  });

  it('asks the host when reading the page throws (a cross-origin host)', async () => {
    const crossOrigin = {
      get location(): Location {
        throw new Error('SecurityError');
      },
    } as unknown as Window;
    const {client, host} = pair(crossOrigin);
    const data = client.readUrlData();
    const [request] = await host.receive(1);
    expect(request.type).toBe(GET_URL_PLUGIN_DATA);
    host.send({type: GET_URL_PLUGIN_DATA, id: request.id, payload: {run: 'a'}, error: null, isReply: true});
    await expect(data).resolves.toEqual({run: 'a'});
  });

  it('reads no keys outside TensorBoard or when the host answers an error', async () => {
    await expect(new HostClient(null).readUrlData()).resolves.toEqual({});
    const {client, host} = pair();
    const data = client.readUrlData();
    const [request] = await host.receive(1);
    host.send({type: GET_URL_PLUGIN_DATA, id: request.id, payload: null, error: 'unknown', isReply: true});
    await expect(data).resolves.toEqual({});
  });

  it("writes the keys into the host's hash, replacing the history entry and keeping its state", () => {
    const {hostWindow, replaced, historyState} = fakeHostWindow('weight_health&_smoothingWeight=0.6&p.weight_health.run=old');
    new HostClient(null, hostWindow).writeUrlData({run: 'a b', view: 'layer'});
    expect(replaced).toEqual([
      {
        state: historyState,
        url: 'http://localhost:6006/?darkMode=true#weight_health&_smoothingWeight=0.6&p.weight_health.run=a%20b&p.weight_health.view=layer',
      },
    ]);
  });

  it('does not touch the history when the hash would not change', () => {
    const {hostWindow, replaced} = fakeHostWindow('weight_health&x=1&p.weight_health.run=a');
    const client = new HostClient(null, hostWindow);
    client.writeUrlData({run: 'a'});
    expect(replaced).toEqual([]);
    client.writeUrlData({run: 'b'});
    client.writeUrlData({run: 'b'});
    expect(replaced).toHaveLength(1);
  });

  it('round-trips awkward names through the host page URL', async () => {
    const {hostWindow, location} = fakeHostWindow('weight_health');
    const client = new HostClient(null, hostWindow);
    client.writeUrlData(AWKWARD);
    expect(location.hash.startsWith('#weight_health&')).toBe(true);
    await expect(client.readUrlData()).resolves.toEqual(AWKWARD);
    // And back to a plain URL when everything is at its default.
    client.writeUrlData({});
    expect(location.hash).toBe('#weight_health');
  });

  it('writes nothing without a host page, and survives a host that refuses', () => {
    expect(() => new HostClient(null).writeUrlData({run: 'a'})).not.toThrow();
    const {hostWindow} = fakeHostWindow('weight_health');
    hostWindow.history.replaceState = () => {
      throw new Error('SecurityError');
    };
    expect(() => new HostClient(null, hostWindow).writeUrlData({run: 'a'})).not.toThrow();
  });
});
