#!/bin/bash
# Where a target's CPU per I/O goes, coarsely but exactly: for rdma-target (one or more built
# trees, VARIANTS="DIR ...", default this one) and tgt over iSER, fio randread 4k at qd1 and
# qd32 on a 64 MiB RAM LUN (tgt: a file on tmpfs):
# - over a clean window (RUN s, nothing attached): the target's user and kernel CPU from
#   /proc/PID/stat (the scheduler's accounting, which stays right under TCG where cpu-clock
#   samples do not), the whole guest's busy CPU from /proc/stat, both per I/O completed;
# - then over 4 s: system calls per I/O by name from the syscall tracepoints (perf stat -p;
#   a few named tracepoints only: enabling all of them slows the process several-fold);
# - or, with TRACE=1, over TRACE_S s (default 5): every system call, context switch and
#   interrupt of the target's threads into an ftrace buffer (tracefs, filtered by pid in the
#   kernel, read after the window), split by scripts/bench/ftrace-account.mjs into user time,
#   each system call and interrupts, per I/O. With CPUPROF=1 rdma-target runs under
#   node --cpu-prof (every 5 ms) and its main thread's user time is split by JS function over
#   the traced window. KPROBES="rxe_requester rxe_icrc_generate ..." also times those kernel
#   functions (kprobe and kretprobe events; their time is taken out of the place they ran in).
# TRANSPORT=tcp: the same over iSCSI/TCP (open-iscsi's tcp interface; tgt's iscsi driver).
# Another job: RW=write BS=128k QDS=8 (fio's --rw and --bs; default randread 4k, qd1 and qd32).
# I/Os are the disk's reads and writes completed (/sys/block/DISK/stat).
# Every window first gets WARM s (default 20) of its job unmeasured: a new daemon's JIT.
# Run in the soft-RoCE VM:  bash scripts/vm/run.sh --timeout 900 -- bash scripts/bench/cpu-split-guest.sh
# A/B:  VARIANTS="/path/to/built/tree-A /path/to/built/tree-B" (each with dist/ and build/).
# CQ spin budgets (config rdma.pollUs), interleaved in one boot: POLLS="0 500 0 500" (- : the default).
# Node or V8 flags for the daemon: NODE_FLAGS="--single-threaded" (NODE_OPTIONS refuses most V8 flags).
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
modprobe -a ib_iser iscsi_tcp sd_mod
mkdir -p /etc/iscsi /run/lock/iscsi /var/lib/iscsi
echo "InitiatorName=iqn.2025-01.org.rdma-target:vm" >/etc/iscsi/initiatorname.iscsi
touch /etc/iscsi/iscsid.conf
iscsid; sleep 0.5
W=/run/exp; mkdir -p $W/state
IP=10.77.0.1
HZ=$(getconf CLK_TCK)
RUN=${RUN:-10}
RW=${RW:-randread} BS=${BS:-4k}
TRANSPORT=${TRANSPORT:-iser}
case $TRANSPORT in
  iser) IFACE=iser TGT_LLD=iser TAG="" ;;
  tcp) IFACE=default TGT_LLD=iscsi TAG=" tcp" ;;
  *) echo "TRANSPORT is iser or tcp, not $TRANSPORT" >&2; exit 2 ;;
esac
WARM=${WARM:-20}
TRACE_S=${TRACE_S:-5}
login() { # IQN
  iscsiadm -m node -o new -T "$1" -p $IP:3260 -I $IFACE >/dev/null
  iscsiadm -m node -T "$1" -p $IP:3260 -I $IFACE --login >/dev/null || { echo "login failed"; return 1; }
  for i in $(seq 1 100); do
    DISK=$(iscsiadm -m session -P3 2>/dev/null | sed -n 's/.*Attached scsi disk \(sd[a-z]*\).*/\1/p' | head -1)
    [[ -n $DISK && -b /dev/$DISK ]] && break; sleep 0.2
  done
  dd if=/dev/zero of=/dev/$DISK bs=1M count=64 oflag=direct status=none
}
logout() { iscsiadm -m node -T "$1" -p $IP:3260 -I $IFACE --logout >/dev/null; iscsiadm -m node -o delete >/dev/null 2>&1; }
# One line per thread of PID: tid, name, utime, stime (ticks), voluntary and involuntary switches.
threads() {
  local t
  for t in /proc/$1/task/*; do
    echo "${t##*/} $(tr ' ' '_' <$t/comm) $(awk '{print $14, $15}' $t/stat) $(awk '/^voluntary_ctxt/ {v=$2} /^nonvoluntary_ctxt/ {n=$2} END {print v, n}' $t/status)"
  done
}
# The traced window: the target's threads' system calls, switches and interrupts into a tracefs
# instance of its own, filtered by pid in the kernel; the dump is analysed after the daemon has
# exited (when node has written its .cpuprofile), by trace_report.
# I/Os the disk completed so far, reads and writes.
disk_ios() { awk '{print $1 + $5}' /sys/block/$DISK/stat; }
task_ns() { local f s=0 v; for f in /proc/$1/task/*/schedstat; do read -r v _ <"$f" 2>/dev/null && s=$((s + v)); done; echo "$s"; }
# The events are enabled once, before any I/O, with filters that match nothing, and stay
# enabled: a window only sets the filters to the target's threads and switches the instance's
# recording on and off. Enabling or disabling a tracepoint patches kernel text on every CPU;
# doing that per window, under I/O, soft-locked the guest once (a shell writing to tracefs
# stuck on one vCPU, a kworker of the initiator's on the other). The events' cost outside the
# traced windows is then a filter test per system call and context switch of the guest.
# They stay enabled when the script ends (disabling them after tgt's teardown soft-locked the
# guest once more, with rxe's cleanup under way): a later run in the same boot finds them on.
T=/sys/kernel/tracing I=$T/instances/acct NOBODY=999999
trace_events() { (cd $I/events && ls -d raw_syscalls/sys_enter raw_syscalls/sys_exit irq/irq_handler_entry irq/irq_handler_exit \
  irq/softirq_entry irq/softirq_exit exceptions/page_fault_user exceptions/page_fault_kernel irq_vectors/*_entry irq_vectors/*_exit rtk/*_in rtk/*_out 2>/dev/null); }
trace_filters() { # TID... (none: match nothing)
  local f1 f2 e t
  f1=$(for t in ${@:-$NOBODY}; do echo -n "common_pid == $t || "; done); f1=${f1% || }
  f2=$(for t in ${@:-$NOBODY}; do echo -n "prev_pid == $t || next_pid == $t || "; done); f2=${f2% || }
  for e in $(trace_events); do echo "$f1" >$I/events/$e/filter; done
  echo "$f2" >$I/events/sched/sched_switch/filter
}
trace_setup() {
  [[ -d $T/events ]] || mount -t tracefs nodev $T
  mkdir -p $I
  echo 0 >$I/tracing_on; echo 32768 >$I/buffer_size_kb
  # KPROBES="fn ...": kernel functions timed from entry to return (kprobe + kretprobe), e.g.
  # rxe's send task and its ICRC inside the doorbell write.
  local fn e
  for fn in ${KPROBES:-}; do
    [[ -d $T/events/rtk/${fn}_in ]] && continue
    { echo "p:rtk/${fn}_in $fn" >>$T/kprobe_events && echo "r:rtk/${fn}_out $fn" >>$T/kprobe_events; } || echo "   (no kprobe on $fn)"
  done
  trace_filters
  for e in $(trace_events) sched/sched_switch; do grep -q 1 $I/events/$e/enable || echo 1 >$I/events/$e/enable; done
}
NTRACE=0
trace_window() { # LABEL PID
  local label=$1 pid=$2 tids
  tids=$(ls /proc/$pid/task)
  : >$I/trace
  trace_filters $tids
  local io0 io1 u0 u1 n0 n1
  io0=$(disk_ios); u0=$(cut -d' ' -f1 /proc/uptime); n0=$(task_ns $pid)
  echo 1 >$I/tracing_on
  sleep $TRACE_S
  echo 0 >$I/tracing_on
  io1=$(disk_ios); u1=$(cut -d' ' -f1 /proc/uptime); n1=$(task_ns $pid)
  trace_filters
  NTRACE=$((NTRACE + 1))
  local d=$W/trace$NTRACE; rm -rf $d; mkdir -p $d
  cat $I/trace >$d/trace.txt
  ls -l /proc/$pid/fd >$d/fds.txt 2>/dev/null
  echo "$label|$(echo $tids | tr ' ' ,)|$((io1 - io0))|$u0|$u1|$((n1 - n0))" >$d/meta
  echo "   traced window: $((io1 - io0)) I/Os in ${TRACE_S} s ($(( (io1 - io0) / TRACE_S )) IOPS), $(wc -l <$d/trace.txt) events, scheduler's CPU of the process $(awk -v n=$((n1 - n0)) -v i=$((io1 - io0)) 'BEGIN{printf "%.1f", n/1e3/i}') µs/IO"
}
trace_report() { # [CPUPROFILE]: analyse the windows traced since the last call
  local d label tids ios u0 u1 ns
  for d in $W/trace*/; do
    [[ -f $d/meta && ! -f $d/done ]] || continue
    IFS='|' read -r label tids ios u0 u1 ns <$d/meta
    node scripts/bench/ftrace-account.mjs --trace $d/trace.txt --tids $tids --ios $ios --fds $d/fds.txt --name "$label" --record \
      ${1:+--cpuprofile "$1" --from $u0 --to $u1}
    echo "   (the scheduler's count over the same window: $(awk -v n=$ns -v i=$ios 'BEGIN{printf "%.1f", n/1e3/i}') µs/IO)"
    touch $d/done
  done
}
measure() { # NAME PID
  local name=$1 pid=$2 qd
  for qd in ${QDS:-1 32}; do
    fio --name=w --filename=/dev/$DISK --ioengine=libaio --direct=1 --rw=$RW --bs=$BS --size=64M --iodepth=$qd \
      --time_based --runtime=$((WARM + RUN + TRACE_S + 60)) --output-format=json --output=$W/fio.json >/dev/null 2>&1 &
    local fp=$!
    sleep $((WARM + 3))
    read -r u0 s0 < <(awk '{print $14, $15}' /proc/$pid/stat)
    local r0; r0=$(task_ns $pid)
    threads $pid >$W/thr0.txt
    local cx0; cx0=$(awk '/^ctxt / {print $2}' /proc/stat)
    local io0; io0=$(disk_ios)
    local g0; g0=$(awk '/^cpu / {print $2+$3+$4+$7+$8}' /proc/stat)
    local t0; t0=$(date +%s.%N)
    sleep $RUN
    local g1; g1=$(awk '/^cpu / {print $2+$3+$4+$7+$8}' /proc/stat)
    local t1; t1=$(date +%s.%N)
    local io1; io1=$(disk_ios)
    read -r u1 s1 < <(awk '{print $14, $15}' /proc/$pid/stat)
    local r1; r1=$(task_ns $pid)
    threads $pid >$W/thr1.txt
    local cx1; cx1=$(awk '/^ctxt / {print $2}' /proc/stat)
    local io2; io2=$(disk_ios)
    if [[ ${TRACE:-0} == 1 ]]; then
      trace_window "$name qd$qd" $pid
    else
      perf stat -x, -o $W/pstat.txt -e raw_syscalls:sys_enter $(for c in read write ioctl epoll_pwait epoll_wait clock_gettime gettimeofday futex io_submit io_getevents pread64 pwrite64 sendmsg recvfrom; do echo -e syscalls:sys_enter_$c; done) -p $pid -- sleep 4 >/dev/null 2>&1
    fi
    local io3; io3=$(disk_ios)
    kill -INT $fp 2>/dev/null; wait $fp
    local n=$((io1 - io0))
    echo "== $name $RW $BS qd$qd: $n I/Os in $(awk -v a=$t0 -v b=$t1 'BEGIN{printf "%.1f", b-a}') s ($(awk -v n=$n -v a=$t0 -v b=$t1 'BEGIN{printf "%d", n/(b-a)}') IOPS)"
    awk -v u=$((u1-u0)) -v s=$((s1-s0)) -v r=$((r1-r0)) -v n=$n -v hz=$HZ 'BEGIN{printf "   CPU us/IO: user %.1f  kernel %.1f  total %.1f (schedstat of the live threads: %.1f)\n", u/hz*1e6/n, s/hz*1e6/n, (u+s)/hz*1e6/n, r/1e3/n}'
    # One machine-readable line per window, for the page (RECORD lines; see also ftrace-account --record).
    awk -v name="$name qd$qd" -v u=$((u1-u0)) -v s=$((s1-s0)) -v r=$((r1-r0)) -v g=$((g1-g0)) -v n=$n -v hz=$HZ -v a=$t0 -v b=$t1 \
      'BEGIN{printf "RECORD {\"kind\":\"window\",\"name\":\"%s\",\"ios\":%d,\"iops\":%.0f,\"cpu_us_per_io\":%.1f,\"user_us_per_io\":%.1f,\"kernel_us_per_io\":%.1f,\"sched_us_per_io\":%.1f,\"guest_busy_us_per_io\":%.1f}\n", name, n, n/(b-a), (u+s)/hz*1e6/n, u/hz*1e6/n, s/hz*1e6/n, r/1e3/n, g/hz*1e6/n}'
    awk -v g=$((g1-g0)) -v n=$n -v hz=$HZ 'BEGIN{printf "   guest busy (all processes, both vCPUs) us/IO: %.1f\n", g/hz*1e6/n}'
    awk -v c=$((cx1-cx0)) -v n=$n 'BEGIN{printf "   context switches, whole guest: %.2f /IO\n", c/n}'
    # Per thread of the target: CPU and context switches per I/O over the window.
    awk -v n=$n -v hz=$HZ 'NR==FNR {a[$1]=$0; next} ($1 in a) {split(a[$1], b); du=$3-b[3]; ds=$4-b[4]; dv=$5-b[5]; dn=$6-b[6];
      if (du+ds+dv+dn > 0) printf "   thread %-16s CPU us/IO user %.1f kernel %.1f; switches /IO voluntary %.2f involuntary %.2f\n", $2, du/hz*1e6/n, ds/hz*1e6/n, dv/n, dn/n}' $W/thr0.txt $W/thr1.txt
    [[ ${TRACE:-0} == 1 ]] ||
      grep -v '^#' $W/pstat.txt | awk -F, -v n=$((io3 - io2)) '$1+0>0 {printf "   %-45s %8.2f /IO\n", $3, $1/n}' | sort -k2 -nr | head -14
  done
}
[[ ${TRACE:-0} == 1 ]] && trace_setup
# --- rdma-target
cat >$W/rt.json <<J
{"targets":[{"iqn":"iqn.2025-01.org.rdma-target:exp","tpgs":[{"tag":1,"portals":[{"address":"$IP","port":3260,"transport":"$TRANSPORT"}],"luns":[{"lun":0,"backstore":{"type":"ram","size":"64M"}}],"attributes":{"generateNodeAcls":true}}]}],"stateDir":"$W/state","control":{"socket":"$W/rt.sock"}}
J
for v in ${VARIANTS:-$root}; do
for pu in ${POLLS:--}; do
  if [[ $pu == - ]]; then cp $W/rt.json $W/rt-v.json; else sed "s/^{/{\"rdma\":{\"pollUs\":$pu},/" $W/rt.json >$W/rt-v.json; fi
  rm -rf $W/cpuprof
  node ${NODE_FLAGS:-} ${CPUPROF:+--cpu-prof --cpu-prof-dir=$W/cpuprof --cpu-prof-interval 5000} $v/dist/cli/main.js --log-format human --config $W/rt-v.json >$W/rt.log 2>&1 &
  RT=$!
  for i in $(seq 1 300); do grep -q "listening on $TRANSPORT" $W/rt.log && break; sleep 0.1; done
  login iqn.2025-01.org.rdma-target:exp && measure "rdma-target($(basename $v) poll=$pu)$TAG" $RT
  node $v/dist/cli/main.js status --socket $W/rt.sock 2>/dev/null | grep -o '"rdmaPoll[A-Za-z]*": *[0-9]*' | tr '\n' ' '; echo
  logout iqn.2025-01.org.rdma-target:exp
  kill $RT; wait $RT
  [[ ${TRACE:-0} == 1 ]] && trace_report "$(ls $W/cpuprof/*.cpuprofile 2>/dev/null | head -1)"
done
done
# --- tgt
if [[ -z ${NOTGT:-} ]]; then
mkdir -p $W/tgt; mount -t tmpfs -o size=100m tmpfs $W/tgt; dd if=/dev/zero of=$W/tgt/lun.img bs=1M count=64 status=none
tgtd -f >$W/tgt.log 2>&1 &
TG=$!
for i in $(seq 1 100); do tgtadm --op show --mode sys >/dev/null 2>&1 && break; sleep 0.2; done
tgtadm --lld $TGT_LLD --op new --mode target --tid 1 -T iqn.2025-01.org.rdma-target:tgt
tgtadm --lld $TGT_LLD --op new --mode logicalunit --tid 1 --lun 1 -b $W/tgt/lun.img
tgtadm --lld $TGT_LLD --op bind --mode target --tid 1 -I ALL
tgtadm --lld $TGT_LLD --op bind --mode target --tid 1 -Q iqn.2025-01.org.rdma-target:vm
tgtadm --lld $TGT_LLD --op show --mode target | head -20
login iqn.2025-01.org.rdma-target:tgt && measure "tgt$TAG" $TG
logout iqn.2025-01.org.rdma-target:tgt
tgtadm --lld $TGT_LLD --op delete --mode target --tid 1 --force; tgtadm --op delete --mode system; sleep 2; kill -9 $TG 2>/dev/null; wait $TG
[[ ${TRACE:-0} == 1 ]] && trace_report
cat $W/tgt.log | tail -5
fi
