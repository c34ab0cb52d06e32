// The benchmark's ftrace accounting (scripts/bench/ftrace-account.mjs), from a trace written by
// hand in the kernel's text format: on-CPU time split by place, waits not counted as CPU.
import { describe, expect, it } from 'vitest';
// @ts-expect-error: a plain .mjs benchmark script, without types
import { account, fdKinds, summarise, syscallNames } from '../../../scripts/bench/ftrace-account.mjs';

const names = syscallNames('#define __NR_read 0\n#define __NR_write 1\n#define __NR_epoll_wait 232\n');
const fds = fdKinds(
  [
    'lrwx------ 1 root root 64 Dec  7 06:00 5 -> /dev/infiniband/uverbs0',
    'lrwx------ 1 root root 64 Dec  7 06:00 7 -> anon_inode:[infinibandevent]',
    'lrwx------ 1 root root 64 Dec  7 06:00 9 -> socket:[1234]',
  ].join('\n'),
);
const ev = (t: string, ts: string, what: string, body: string, cpu = '001') => `            ${t} [${cpu}] d..2. ${ts}: ${what}: ${body}`;
// Thread 100 (node): 10 µs user, epoll_wait that sleeps 1 ms and spends 5 µs on-CPU, a read of
// the CQ channel (20 µs, of which a 6 µs softirq), a 32-byte uverbs write (40 µs), 10 µs user.
const trace = [
  '# tracer: nop',
  ev('node-100', '10.000000', 'sys_exit', 'NR 232 = 0'),
  ev('node-100', '10.000010', 'sys_enter', 'NR 232 (4, 7ffd, 400, ffffffff, 0, 0)'),
  ev('node-100', '10.000012', 'sched_switch', 'prev_comm=node prev_pid=100 prev_prio=120 prev_state=S ==> next_comm=swapper/1 next_pid=0 next_prio=120'),
  ev('<idle>-0', '10.001012', 'sched_switch', 'prev_comm=swapper/1 prev_pid=0 prev_prio=120 prev_state=R ==> next_comm=node next_pid=100 next_prio=120'),
  ev('node-100', '10.001015', 'sys_exit', 'NR 232 = 1'),
  ev('node-100', '10.001015', 'sys_enter', 'NR 0 (7, 7ffd, 10, 0, 0, 0)'),
  ev('node-100', '10.001020', 'softirq_entry', 'vec=3 [action=NET_RX]'),
  ev('node-100', '10.001026', 'softirq_exit', 'vec=3 [action=NET_RX]'),
  ev('node-100', '10.001035', 'sys_exit', 'NR 0 = 16'),
  ev('node-100', '10.001035', 'sys_enter', 'NR 1 (5, 7ffd, 20, 0, 0, 0)'),
  ev('node-100', '10.001075', 'sys_exit', 'NR 1 = 32'),
  ev('node-200', '10.001080', 'sys_enter', 'NR 1 (9, 7ffd, 20, 0, 0, 0)'),
  ev('node-100', '10.001085', 'sched_switch', 'prev_comm=node prev_pid=100 prev_prio=120 prev_state=R+ ==> next_comm=fio next_pid=300 next_prio=120'),
].join('\n');

describe('ftrace accounting', () => {
  const acc = account(trace, [100], names, fds);
  const s = acc.threads.get(100);
  const place = (k: string) => Math.round(s.byPlace.get(k) ?? 0);

  it('charges on-CPU time only: the sleep inside epoll_wait is not CPU', () => {
    expect(Math.round(s.onUs)).toBe(85 - 1000 + 1000); // 10.000000 → 10.001085 less the 1,000 µs asleep
    expect(place('sys:epoll_wait')).toBe(2 + 3);
    expect(place('user')).toBe(10 + 10);
  });
  it('names reads and writes by their file, uverbs writes by command size, and splits out interrupts', () => {
    expect(place('sys:read CQ event channel')).toBe(20 - 6);
    expect(place('softirq NET_RX')).toBe(6);
    expect(place('sys:write uverbs (POST_SEND doorbell: rxe transmits)')).toBe(40);
    expect(s.calls.get('write uverbs (POST_SEND doorbell: rxe transmits)')).toBe(1);
  });
  it('ignores threads not asked for, and counts sleeps and preemptions', () => {
    expect(acc.threads.has(200)).toBe(false);
    expect([s.sleeps, s.preempted, s.switchIn]).toEqual([1, 1, 1]);
  });
  it('takes a probed kernel function out of the call it ran in, and closes it at the call end if its return was missed', () => {
    const t = [
      ev('node-100', '20.000000', 'sys_exit', 'NR 0 = 0'),
      ev('node-100', '20.000010', 'sys_enter', 'NR 1 (5, 7ffd, 20, 0, 0, 0)'),
      ev('node-100', '20.000015', 'rxe_requester_in', '(rxe_requester+0x0/0x900 [rdma_rxe])'),
      ev('node-100', '20.000020', 'rxe_icrc_generate_in', '(rxe_icrc_generate+0x0/0x80 [rdma_rxe])'),
      ev('node-100', '20.000027', 'rxe_icrc_generate_out', '(rxe_requester+0x5d0/0x900 [rdma_rxe] <- rxe_icrc_generate)'),
      ev('node-100', '20.000040', 'sys_exit', 'NR 1 = 32'),
      ev('node-100', '20.000050', 'sys_enter', 'NR 0 (7, 7ffd, 10, 0, 0, 0)'),
      ev('node-100', '20.000055', 'sys_exit', 'NR 0 = 16'),
    ].join('\n');
    const p = account(t, [100], names, fds).threads.get(100).byPlace;
    const at = (k: string) => Math.round(p.get(k) ?? 0);
    expect(at('kernel rxe_icrc_generate()')).toBe(7);
    expect(at('kernel rxe_requester()')).toBe(25 - 7); // 20.000015 → .000040 (its return missed), less the ICRC
    expect(at('sys:write uverbs (POST_SEND doorbell: rxe transmits)')).toBe(5);
    expect(at('sys:read CQ event channel')).toBe(5);
  });
  it('sums per I/O', () => {
    const r = summarise(acc, 5);
    expect(r.cpu_us_per_io).toBe(17);
    expect(r.interrupt_us_per_io).toBe(1.2);
    expect(r.syscalls_per_io).toBe(0.6); // epoll_wait's first exit had no enter in the window
  });
});
