// The task set of one LU (SAM-5 8): the tasks in it by I_T nexus and tag, the order task
// attributes impose, a depth beyond which TASK SET FULL is the answer, and aborting tasks
// and waiting for them to end.

import type { Task } from './task.js';
import { TaskAttribute, type Nexus } from './types.js';

export interface TaskEntry {
  readonly tag: number;
  readonly key: string;
  readonly attribute: TaskAttribute;
  readonly task: Task;
  /** Settles when the task has ended, however it ended. */
  readonly done: Promise<void>;
  /** Resolves when the task is aborted: releases it from a wait for earlier tasks. */
  readonly abortedSignal: Promise<void>;
  /** Marks the task aborted. */
  abort(): void;
  /** Ends the task and takes it out of the set. */
  end(): void;
}

export class TaskSet {
  private readonly tasks = new Map<string, TaskEntry>();

  constructor(
    readonly depth: number,
    /** How long a task management function waits for the tasks it aborted to end. */
    readonly abortWaitMs: number,
  ) {}

  get size(): number {
    return this.tasks.size;
  }

  full(): boolean {
    return this.tasks.size >= this.depth;
  }

  /**
   * Enters a task; returns it and what it must wait for first (SAM-5 8.6): an ORDERED task
   * waits for every task before it, any task waits for the ORDERED ones before it, a HEAD
   * OF QUEUE task waits for nothing.
   */
  enter(t: Task, tag: number, attribute: TaskAttribute): { entry: TaskEntry; before: Promise<void>[] } {
    const before: Promise<void>[] = [];
    if (attribute !== TaskAttribute.HeadOfQueue)
      for (const r of this.tasks.values()) if (attribute === TaskAttribute.Ordered || r.attribute === TaskAttribute.Ordered) before.push(r.done);
    const id = `${t.key}\u0000${tag}`;
    let finish!: () => void;
    let signal!: () => void;
    const tasks = this.tasks;
    const entry: TaskEntry = {
      tag,
      key: t.key,
      attribute,
      task: t,
      done: new Promise<void>((res) => (finish = res)),
      abortedSignal: new Promise<void>((res) => (signal = res)),
      abort() {
        t.aborted = true;
        signal();
      },
      end() {
        if (tasks.get(id) === entry) tasks.delete(id);
        finish();
      },
    };
    this.tasks.set(id, entry);
    return { entry, before };
  }

  find(key: string, tag: number | undefined): TaskEntry | undefined {
    return this.tasks.get(`${key}\u0000${tag}`);
  }

  /** The tasks of one I_T nexus, or all of them. */
  of(key?: string): TaskEntry[] {
    const all = [...this.tasks.values()];
    return key === undefined ? all : all.filter((r) => r.key === key);
  }

  /** Aborts without waiting (PREEMPT AND ABORT from inside a running task, I_T nexus loss). */
  abortWhere(pred: (n: Nexus, key: string) => boolean): void {
    for (const r of this.tasks.values()) if (pred(r.task.nexus, r.key)) r.abort();
  }

  /** Aborts the tasks and resolves when they have ended, or after `abortWaitMs` for one stuck on its initiator. */
  async abortAndWait(rs: TaskEntry[]): Promise<void> {
    if (rs.length === 0) return;
    for (const r of rs) r.abort();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((res) => {
      timer = setTimeout(res, this.abortWaitMs);
      timer.unref?.();
    });
    await Promise.race([Promise.all(rs.map((r) => r.done)), timeout]);
    clearTimeout(timer);
  }
}
