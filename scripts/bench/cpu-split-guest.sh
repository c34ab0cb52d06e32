#!/bin/bash
# Where a target's CPU per I/O goes, coarsely but exactly: for rdma-target (one or more built
# trees, VARIANTS="DIR ...", default this one) and tgt over iSER, fio randread 4k at qd1 and
# qd32 on a 64 MiB RAM LUN (tgt: a file on tmpfs):
# - over a clean window (RUN s, nothing attached): the target's user and kernel CPU from
#   /proc/PID/stat (the scheduler's accounting, which stays right under TCG where cpu-clock
#   samples do not), the whole guest's busy CPU from /proc/stat, both per I/O completed;
# - then over 4 s: system calls per I/O by name from the syscall tracepoints (perf stat -p;
#   a few named tracepoints only: enabling all of them slows the process several-fold).
# Run in the soft-RoCE VM:  bash scripts/vm/run.sh --timeout 900 -- bash scripts/bench/cpu-split-guest.sh
# A/B:  VARIANTS="/path/to/built/tree-A /path/to/built/tree-B" (each with dist/ and build/).
# CQ spin budgets (config rdma.pollUs), interleaved in one boot: POLLS="0 500 0 500" (- : the default).
# Node or V8 flags for the daemon: NODE_FLAGS="--single-threaded" (NODE_OPTIONS refuses most V8 flags).
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
modprobe -a ib_iser sd_mod
mkdir -p /etc/iscsi /run/lock/iscsi /var/lib/iscsi
echo "InitiatorName=iqn.2025-01.org.rdma-target:vm" >/etc/iscsi/initiatorname.iscsi
touch /etc/iscsi/iscsid.conf
iscsid; sleep 0.5
W=/run/exp; mkdir -p $W/state
IP=10.77.0.1
HZ=$(getconf CLK_TCK)
RUN=${RUN:-10}
login() { # IQN
  iscsiadm -m node -o new -T "$1" -p $IP:3260 -I iser >/dev/null
  iscsiadm -m node -T "$1" -p $IP:3260 -I iser --login >/dev/null || { echo "login failed"; return 1; }
  for i in $(seq 1 100); do
    DISK=$(iscsiadm -m session -P3 2>/dev/null | sed -n 's/.*Attached scsi disk \(sd[a-z]*\).*/\1/p' | head -1)
    [[ -n $DISK && -b /dev/$DISK ]] && break; sleep 0.2
  done
  dd if=/dev/zero of=/dev/$DISK bs=1M count=64 oflag=direct status=none
}
logout() { iscsiadm -m node -T "$1" -p $IP:3260 -I iser --logout >/dev/null; iscsiadm -m node -o delete >/dev/null 2>&1; }
# One line per thread of PID: tid, name, utime, stime (ticks), voluntary and involuntary switches.
threads() {
  local t
  for t in /proc/$1/task/*; do
    echo "${t##*/} $(tr ' ' '_' <$t/comm) $(awk '{print $14, $15}' $t/stat) $(awk '/^voluntary_ctxt/ {v=$2} /^nonvoluntary_ctxt/ {n=$2} END {print v, n}' $t/status)"
  done
}
measure() { # NAME PID
  local name=$1 pid=$2 qd
  for qd in ${QDS:-1 32}; do
    fio --name=w --filename=/dev/$DISK --ioengine=libaio --direct=1 --rw=randread --bs=4k --size=64M --iodepth=$qd \
      --time_based --runtime=$((RUN + 9)) --ramp_time=2 --output-format=json --output=$W/fio.json >/dev/null 2>&1 &
    local fp=$!
    sleep 3
    read -r u0 s0 < <(awk '{print $14, $15}' /proc/$pid/stat)
    threads $pid >$W/thr0.txt
    local cx0; cx0=$(awk '/^ctxt / {print $2}' /proc/stat)
    local io0; io0=$(awk '{print $1}' /sys/block/$DISK/stat)
    local g0; g0=$(awk '/^cpu / {print $2+$3+$4+$7+$8}' /proc/stat)
    local t0; t0=$(date +%s.%N)
    sleep $RUN
    local g1; g1=$(awk '/^cpu / {print $2+$3+$4+$7+$8}' /proc/stat)
    local t1; t1=$(date +%s.%N)
    local io1; io1=$(awk '{print $1}' /sys/block/$DISK/stat)
    read -r u1 s1 < <(awk '{print $14, $15}' /proc/$pid/stat)
    threads $pid >$W/thr1.txt
    local cx1; cx1=$(awk '/^ctxt / {print $2}' /proc/stat)
    local io2; io2=$(awk '{print $1}' /sys/block/$DISK/stat)
    perf stat -x, -o $W/pstat.txt -e raw_syscalls:sys_enter $(for c in read write ioctl epoll_pwait epoll_wait clock_gettime gettimeofday futex io_submit io_getevents pread64 pwrite64 sendmsg recvfrom; do echo -e syscalls:sys_enter_$c; done) -p $pid -- sleep 4 >/dev/null 2>&1
    local io3; io3=$(awk '{print $1}' /sys/block/$DISK/stat)
    wait $fp
    local n=$((io1 - io0))
    echo "== $name randread 4k qd$qd: $n I/Os in $(awk -v a=$t0 -v b=$t1 'BEGIN{printf "%.1f", b-a}') s ($(awk -v n=$n -v a=$t0 -v b=$t1 'BEGIN{printf "%d", n/(b-a)}') IOPS)"
    awk -v u=$((u1-u0)) -v s=$((s1-s0)) -v n=$n -v hz=$HZ 'BEGIN{printf "   CPU us/IO: user %.1f  kernel %.1f  total %.1f\n", u/hz*1e6/n, s/hz*1e6/n, (u+s)/hz*1e6/n}'
    awk -v g=$((g1-g0)) -v n=$n -v hz=$HZ 'BEGIN{printf "   guest busy (all processes, both vCPUs) us/IO: %.1f\n", g/hz*1e6/n}'
    awk -v c=$((cx1-cx0)) -v n=$n 'BEGIN{printf "   context switches, whole guest: %.2f /IO\n", c/n}'
    # Per thread of the target: CPU and context switches per I/O over the window.
    awk -v n=$n -v hz=$HZ 'NR==FNR {a[$1]=$0; next} ($1 in a) {split(a[$1], b); du=$3-b[3]; ds=$4-b[4]; dv=$5-b[5]; dn=$6-b[6];
      if (du+ds+dv+dn > 0) printf "   thread %-16s CPU us/IO user %.1f kernel %.1f; switches /IO voluntary %.2f involuntary %.2f\n", $2, du/hz*1e6/n, ds/hz*1e6/n, dv/n, dn/n}' $W/thr0.txt $W/thr1.txt
    grep -v '^#' $W/pstat.txt | awk -F, -v n=$((io3 - io2)) '$1+0>0 {printf "   %-45s %8.2f /IO\n", $3, $1/n}' | sort -k2 -nr | head -14
  done
}
# --- rdma-target
cat >$W/rt.json <<J
{"targets":[{"iqn":"iqn.2025-01.org.rdma-target:exp","tpgs":[{"tag":1,"portals":[{"address":"$IP","port":3260,"transport":"iser"}],"luns":[{"lun":0,"backstore":{"type":"ram","size":"64M"}}],"attributes":{"generateNodeAcls":true}}]}],"stateDir":"$W/state","control":{"socket":"$W/rt.sock"}}
J
for v in ${VARIANTS:-$root}; do
for pu in ${POLLS:--}; do
  if [[ $pu == - ]]; then cp $W/rt.json $W/rt-v.json; else sed "s/^{/{\"rdma\":{\"pollUs\":$pu},/" $W/rt.json >$W/rt-v.json; fi
  node ${NODE_FLAGS:-} $v/dist/cli/main.js --log-format human --config $W/rt-v.json >$W/rt.log 2>&1 &
  RT=$!
  for i in $(seq 1 300); do grep -q "listening on iser" $W/rt.log && break; sleep 0.1; done
  login iqn.2025-01.org.rdma-target:exp && measure "rdma-target($(basename $v) poll=$pu)" $RT
  node $v/dist/cli/main.js status --socket $W/rt.sock 2>/dev/null | grep -o '"rdmaPoll[A-Za-z]*": *[0-9]*' | tr '\n' ' '; echo
  logout iqn.2025-01.org.rdma-target:exp
  kill $RT; wait $RT
done
done
# --- tgt
if [[ -z ${NOTGT:-} ]]; then
mkdir -p $W/tgt; mount -t tmpfs -o size=100m tmpfs $W/tgt; dd if=/dev/zero of=$W/tgt/lun.img bs=1M count=64 status=none
tgtd -f >$W/tgt.log 2>&1 &
TG=$!
for i in $(seq 1 100); do tgtadm --op show --mode sys >/dev/null 2>&1 && break; sleep 0.2; done
tgtadm --lld iser --op new --mode target --tid 1 -T iqn.2025-01.org.rdma-target:tgt
tgtadm --lld iser --op new --mode logicalunit --tid 1 --lun 1 -b $W/tgt/lun.img
tgtadm --lld iser --op bind --mode target --tid 1 -I ALL
tgtadm --lld iser --op bind --mode target --tid 1 -Q iqn.2025-01.org.rdma-target:vm
tgtadm --lld iser --op show --mode target | head -20
login iqn.2025-01.org.rdma-target:tgt && measure tgt $TG
logout iqn.2025-01.org.rdma-target:tgt
tgtadm --lld iser --op delete --mode target --tid 1 --force; tgtadm --op delete --mode system; sleep 2; kill -9 $TG 2>/dev/null; wait $TG
cat $W/tgt.log | tail -5
fi
