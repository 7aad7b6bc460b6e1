// The host side here speaks TensorBoard's wire format by hand over a real MessageChannel.
import {afterEach, describe, expect, it} from 'vitest';
import {
  BOOTSTRAP,
  connectToHost,
  DATA_RELOADED,
  HostClient,
  parseHostMessage,
  type HostMessage,
} from '../src/host_client';

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
function pair(): {client: HostClient; host: FakeHost} {
  const channel = new MessageChannel();
  const client = new HostClient(channel.port1);
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
