// RDMA/CM with per-id routing: one event channel, each id's events go to its own handler
// (CONNECT_REQUEST goes to the listener's). Plus promise helpers for the client side of
// address/route resolution and connection establishment.
import { native, type CmEvent, type ConnParam, type NativeCmChannel, type NativeCmId } from './binding.js';

export type CmHandler = (ev: CmEvent) => void;

export const CmEventType = {
  AddrResolved: 'RDMA_CM_EVENT_ADDR_RESOLVED',
  AddrError: 'RDMA_CM_EVENT_ADDR_ERROR',
  RouteResolved: 'RDMA_CM_EVENT_ROUTE_RESOLVED',
  RouteError: 'RDMA_CM_EVENT_ROUTE_ERROR',
  ConnectRequest: 'RDMA_CM_EVENT_CONNECT_REQUEST',
  ConnectResponse: 'RDMA_CM_EVENT_CONNECT_RESPONSE',
  ConnectError: 'RDMA_CM_EVENT_CONNECT_ERROR',
  Unreachable: 'RDMA_CM_EVENT_UNREACHABLE',
  Rejected: 'RDMA_CM_EVENT_REJECTED',
  Established: 'RDMA_CM_EVENT_ESTABLISHED',
  Disconnected: 'RDMA_CM_EVENT_DISCONNECTED',
  DeviceRemoval: 'RDMA_CM_EVENT_DEVICE_REMOVAL',
  AddrChange: 'RDMA_CM_EVENT_ADDR_CHANGE',
  TimewaitExit: 'RDMA_CM_EVENT_TIMEWAIT_EXIT',
} as const;

export class RdmaCm implements Disposable {
  readonly channel: NativeCmChannel;
  /**
   * Sees every DEVICE_REMOVAL and ADDR_CHANGE after the id's own handler: an owner of
   * several ids on a device (a fabric) tears the whole device down on the first.
   */
  onDeviceEvent: ((ev: CmEvent) => void) | undefined;
  private readonly handlers = new Map<NativeCmId, CmHandler>();
  /** Timers of pending next() calls, cancelled when their id is destroyed. */
  private readonly timers = new Map<NativeCmId, NodeJS.Timeout>();

  constructor() {
    this.channel = new (native().CmEventChannel)((ev) => this.route(ev));
  }

  private route(ev: CmEvent): void {
    const target = ev.type === CmEventType.ConnectRequest ? ev.listener : ev.id;
    const h = target && this.handlers.get(target);
    if (h) h(ev);
    else if (ev.type === CmEventType.ConnectRequest) ev.id?.reject(); // nobody listens any more
    if (ev.type === CmEventType.DeviceRemoval || ev.type === CmEventType.AddrChange) this.onDeviceEvent?.(ev);
  }

  createId(handler?: CmHandler): NativeCmId {
    const id = new (native().CmId)(this.channel);
    if (handler) this.handlers.set(id, handler);
    return id;
  }

  /** Routes `id`'s events to `handler` (for ids born from CONNECT_REQUEST). */
  setHandler(id: NativeCmId, handler: CmHandler): void {
    this.handlers.set(id, handler);
  }

  /** Destroys `id` (and its QP) and forgets its handler. */
  destroy(id: NativeCmId): void {
    this.handlers.delete(id);
    // A pending next() on a destroyed id never settles: rejecting it later, from a timer,
    // would surface as an unhandled rejection in code that has moved on.
    clearTimeout(this.timers.get(id));
    this.timers.delete(id);
    id.close();
  }

  /** Binds and listens; CONNECT_REQUEST events go to `onRequest`. Port 0 picks one (id.localPort). */
  listen(address: string, port: number, onRequest: CmHandler, backlog = 128): NativeCmId {
    const id = this.createId(onRequest);
    try {
      id.bind(address, port);
      id.listen(backlog);
    } catch (e) {
      this.destroy(id);
      throw e;
    }
    return id;
  }

  /** Resolves address and route for a new id; resolves with the id ready for a QP and connect(). */
  async resolve(address: string, port: number, timeoutMs = 2000, source?: string): Promise<NativeCmId> {
    const id = this.createId();
    try {
      const addr = this.next(id, timeoutMs * 2);
      id.resolveAddr(address, port, timeoutMs, source);
      expectEvent(await addr, CmEventType.AddrResolved, 'resolveAddr');
      const route = this.next(id, timeoutMs * 2);
      id.resolveRoute(timeoutMs);
      expectEvent(await route, CmEventType.RouteResolved, 'resolveRoute');
      return id;
    } catch (e) {
      this.destroy(id);
      throw e;
    }
  }

  /** connect() and wait for ESTABLISHED; a REJECTED event becomes an Error with .event. */
  async connect(id: NativeCmId, param: ConnParam, timeoutMs = 10_000): Promise<CmEvent> {
    const ev = this.next(id, timeoutMs);
    id.connect(param);
    return expectEvent(await ev, CmEventType.Established, 'connect');
  }

  /** The next event on `id` (replacing its handler meanwhile). */
  next(id: NativeCmId, timeoutMs: number): Promise<CmEvent> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.handlers.delete(id);
        this.timers.delete(id);
        const e = new Error(`RDMA/CM: no event within ${timeoutMs} ms`);
        (e as NodeJS.ErrnoException).code = 'ETIMEDOUT';
        reject(e);
      }, timeoutMs);
      this.timers.set(id, timer);
      this.handlers.set(id, (ev) => {
        clearTimeout(timer);
        this.timers.delete(id);
        this.handlers.delete(id);
        resolve(ev);
      });
    });
  }

  close(): void {
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
    this.handlers.clear();
    this.channel.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

function expectEvent(ev: CmEvent, type: string, what: string): CmEvent {
  if (ev.type === type) return ev;
  const e = new Error(`RDMA/CM ${what}: expected ${type}, got ${ev.type} (status ${ev.status})`);
  (e as NodeJS.ErrnoException).code = ev.type === CmEventType.Rejected ? 'ECONNREFUSED' : 'ECONNABORTED';
  (e as Error & { event?: CmEvent }).event = ev;
  throw e;
}
