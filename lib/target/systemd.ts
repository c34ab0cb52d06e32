// systemd's service notification protocol (sd_notify(3)) for Type=notify units: READY=1 once
// every TCP portal listens and every RDMA portal listens or waits for its device (then
// STATUS= names what it waits for, and is sent again once it listens: Daemon.servingStatus),
// RELOADING=1/READY=1 around a SIGHUP reload, STOPPING=1 at SIGTERM, and WATCHDOG=1 at half
// the WatchdogSec interval the manager passes in $WATCHDOG_USEC.
//
// Node has no AF_UNIX datagram sockets, so each message is sent by systemd's own
// `systemd-notify`, present wherever systemd is. It runs as a child of the daemon, so the unit
// needs NotifyAccess=all; `--pid=<daemon pid>` names the daemon as the unit's main process, and
// systemd-notify (v246+) waits on a BARRIER=1 until the manager has read the message, which
// closes the race of a sender that exits before the manager looks up its cgroup. Messages are
// sent one at a time, in order (RELOADING=1 before its READY=1).
//
// Nothing here runs without $NOTIFY_SOCKET: outside systemd the daemon spawns nothing.

import { spawn } from 'node:child_process';
import type { Logger } from '../common/log.js';

export interface NotifierOptions {
  /** The environment to read NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID from (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** The program that sends (default `systemd-notify` on PATH). */
  command?: string;
  log: Logger;
}

export class SystemdNotifier {
  private chain: Promise<void> = Promise.resolve();
  private watchdog: NodeJS.Timeout | undefined;
  private failed = false;
  private stopped = false;

  private constructor(
    private readonly env: NodeJS.ProcessEnv,
    private readonly command: string,
    private readonly log: Logger,
  ) {}

  /** A notifier when the daemon runs under a service manager that listens ($NOTIFY_SOCKET), else undefined. */
  static fromEnv(o: NotifierOptions): SystemdNotifier | undefined {
    const env = o.env ?? process.env;
    if (!env.NOTIFY_SOCKET) return undefined;
    return new SystemdNotifier(env, o.command ?? 'systemd-notify', o.log);
  }

  /** The watchdog interval asked for (µs), when it is meant for this process. */
  watchdogUsec(): number | undefined {
    const usec = Number(this.env.WATCHDOG_USEC);
    if (!Number.isFinite(usec) || usec <= 0) return undefined;
    const pid = this.env.WATCHDOG_PID;
    if (pid !== undefined && pid !== '' && Number(pid) !== process.pid) return undefined;
    return usec;
  }

  /** Queues one message (VAR=value lines); resolves once it is sent or has failed (never rejects). */
  notify(vars: Record<string, string | number>): Promise<void> {
    const args = [`--pid=${process.pid}`, ...Object.entries(vars).map(([k, v]) => `${k}=${String(v).replace(/\n/g, ' ')}`)];
    this.chain = this.chain.then(() => this.send(args));
    return this.chain;
  }

  private send(args: string[]): Promise<void> {
    if (this.failed) return Promise.resolve();
    return new Promise<void>((resolve) => {
      let err = '';
      const child = spawn(this.command, args, { stdio: ['ignore', 'ignore', 'pipe'], env: this.env });
      child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
      child.on('error', (e) => {
        // Once: a missing systemd-notify would otherwise fail every watchdog ping.
        this.failed = true;
        this.log.error(
          { event: 'sd-notify', error: e.message },
          `NOTIFY_SOCKET is set but ${this.command} cannot run (${e.message}): systemd is not told that the daemon is ready or alive`,
        );
        resolve();
      });
      child.on('close', (code) => {
        if (code !== 0) this.log.warn({ event: 'sd-notify', code, args }, `${this.command} ${args.join(' ')} failed (${code}): ${err.trim()}`);
        resolve();
      });
    });
  }

  /** READY=1: every portal listens. Starts the watchdog pings when $WATCHDOG_USEC asks for them. */
  ready(status: string): Promise<void> {
    // A reload that ends after SIGTERM must not announce readiness (nor restart the pings).
    if (this.stopped) return this.chain;
    const p = this.notify({ READY: 1, STATUS: status });
    if (!this.watchdog) {
      const usec = this.watchdogUsec();
      if (usec !== undefined) {
        // Half the interval, as sd_watchdog_enabled(3) recommends; a ping still in flight is not doubled.
        let inFlight = false;
        this.watchdog = setInterval(
          () => {
            if (inFlight) return;
            inFlight = true;
            void this.notify({ WATCHDOG: 1 }).then(() => (inFlight = false));
          },
          Math.max(1, Math.floor(usec / 2000)),
        );
        this.watchdog.unref();
      }
    }
    return p;
  }

  /** STATUS= alone (what is served changed, e.g. a waiting RDMA portal now listens); nothing once stopping. */
  status(text: string): Promise<void> {
    if (this.stopped) return this.chain;
    return this.notify({ STATUS: text });
  }

  /** RELOADING=1 (with the CLOCK_MONOTONIC time systemd 253+ wants beside it). */
  reloading(): Promise<void> {
    const usec = process.hrtime.bigint() / 1000n;
    return this.notify({ RELOADING: 1, MONOTONIC_USEC: usec.toString(), STATUS: 'reloading the configuration' });
  }

  /** STOPPING=1; the watchdog pings end. Resolves once the message is out. */
  stopping(status: string): Promise<void> {
    this.stopped = true;
    this.stopWatchdog();
    return this.notify({ STOPPING: 1, STATUS: status });
  }

  stopWatchdog(): void {
    if (this.watchdog) clearInterval(this.watchdog);
    this.watchdog = undefined;
  }

  /** Resolves when every queued message has been sent, or after `ms` (a manager that never reads must not hold the exit). */
  flush(ms = 5000): Promise<void> {
    let t: NodeJS.Timeout | undefined;
    return Promise.race([this.chain, new Promise<void>((r) => (t = setTimeout(r, ms)))]).finally(() => clearTimeout(t));
  }
}
