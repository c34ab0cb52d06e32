// The task set of one LU (SAM-5 8): the tasks in it by I_T nexus and tag, the order task
// attributes impose, a depth beyond which TASK SET FULL is the answer, and aborting tasks
// and waiting for them to end.
//
// Entering and ending a task is on every command's path, so an entry is one object: its
// promises exist only once something waits on them (an ORDERED task, a TMF), and the
// tasks are kept in an array (each entry knows its index) rather than a Map: no key string
// is built per command, and a V8 Map that empties at every command (queue depth 1)
// reallocates its table on each delete.

import type { Task } from './task.js';
import { TaskAttribute, type Nexus } from './types.js';

export interface TaskEntry {
  readonly tag: number;
  readonly key: string;
  readonly attribute: TaskAttribute;
  readonly task: Task;
  /** What the task must wait for first (SAM-5 8.6); undefined when nothing. */
  readonly before: Promise<void>[] | undefined;
  /** Settles when the task has ended, however it ended. */
  readonly done: Promise<void>;
  /** Resolves when the task is aborted: releases it from a wait for earlier tasks. */
  readonly abortedSignal: Promise<void>;
  /** Marks the task aborted. */
  abort(): void;
  /** Ends the task and takes it out of the set. */
  end(): void;
}

/** A task's place in the set: one per Task, made with it and reused with it (lu.ts keeps ended tasks). */
class Entry implements TaskEntry {
  /** Position in the task set's array while in it, -1 after. */
  index = -1;
  key = '';
  tag = 0;
  attribute = TaskAttribute.Simple;
  before: Promise<void>[] | undefined = undefined;
  /** Arrival order (the array's order changes as entries leave). */
  seq = 0;
  private ended = false;
  private aborted = false;
  private donePromise: Promise<void> | undefined;
  private resolveDone: (() => void) | undefined;
  private abortedPromise: Promise<void> | undefined;
  private resolveAborted: (() => void) | undefined;

  constructor(
    private readonly set: TaskSet,
    readonly task: Task,
  ) {}

  /** Enters the set again for the task's next command: nothing of the last one remains. */
  reset(tag: number, attribute: TaskAttribute, before: Promise<void>[] | undefined, seq: number): void {
    this.key = this.task.key;
    this.tag = tag;
    this.attribute = attribute;
    this.before = before;
    this.seq = seq;
    this.ended = false;
    this.aborted = false;
    this.donePromise = undefined;
    this.resolveDone = undefined;
    this.abortedPromise = undefined;
    this.resolveAborted = undefined;
  }

  get done(): Promise<void> {
    if (!this.donePromise) this.donePromise = this.ended ? Promise.resolve() : new Promise<void>((res) => (this.resolveDone = res));
    return this.donePromise;
  }

  get abortedSignal(): Promise<void> {
    if (!this.abortedPromise) this.abortedPromise = this.aborted ? Promise.resolve() : new Promise<void>((res) => (this.resolveAborted = res));
    return this.abortedPromise;
  }

  abort(): void {
    this.task.aborted = true;
    this.aborted = true;
    this.resolveAborted?.();
  }

  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.set.remove(this);
    this.resolveDone?.();
  }
}

export function newEntry(set: TaskSet, task: Task): TaskEntry {
  return new Entry(set, task);
}

export class TaskSet {
  private readonly tasks: Entry[] = [];
  /** ORDERED tasks in the set: while none is, a SIMPLE task waits for nothing. */
  private ordered = 0;
  private seq = 0;

  constructor(
    readonly depth: number,
    /** How long a task management function waits for the tasks it aborted to end. */
    readonly abortWaitMs: number,
  ) {}

  get size(): number {
    return this.tasks.length;
  }

  full(): boolean {
    return this.tasks.length >= this.depth;
  }

  /**
   * Enters a task; the entry says what it must wait for first (SAM-5 8.6): an ORDERED task
   * waits for every task before it, any task waits for the ORDERED ones before it, a HEAD
   * OF QUEUE task waits for nothing.
   */
  enter(t: Task, tag: number, attribute: TaskAttribute): TaskEntry {
    let before: Promise<void>[] | undefined;
    if (attribute !== TaskAttribute.HeadOfQueue && (attribute === TaskAttribute.Ordered || this.ordered > 0)) {
      before = [];
      for (const r of this.tasks) if (attribute === TaskAttribute.Ordered || r.attribute === TaskAttribute.Ordered) before.push(r.done);
      if (before.length === 0) before = undefined;
    }
    const entry = t.entry as Entry;
    entry.reset(tag, attribute, before, this.seq++);
    entry.index = this.tasks.length;
    this.tasks.push(entry);
    if (attribute === TaskAttribute.Ordered) this.ordered++;
    return entry;
  }

  /** Takes an ended entry out: the last entry moves into its place. */
  remove(e: Entry): void {
    const i = e.index;
    if (i < 0) return;
    e.index = -1;
    const last = this.tasks.pop()!;
    if (last !== e) {
      this.tasks[i] = last;
      last.index = i;
    }
    if (e.attribute === TaskAttribute.Ordered) this.ordered--;
  }

  /** The task of an I_T nexus with this tag (the newest, should a tag be in use twice). */
  find(key: string, tag: number | undefined): TaskEntry | undefined {
    let found: Entry | undefined;
    for (const r of this.tasks) if (r.tag === tag && r.key === key && (!found || r.seq > found.seq)) found = r;
    return found;
  }

  /** The tasks of one I_T nexus, or all of them, oldest first. */
  of(key?: string): TaskEntry[] {
    const rs = key === undefined ? [...this.tasks] : this.tasks.filter((r) => r.key === key);
    return rs.sort((a, b) => a.seq - b.seq);
  }

  /** Aborts without waiting (PREEMPT AND ABORT from inside a running task, I_T nexus loss). */
  abortWhere(pred: (n: Nexus, key: string) => boolean): void {
    for (const r of this.of()) if (pred(r.task.nexus, r.key)) r.abort();
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
