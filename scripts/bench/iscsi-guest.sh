#!/usr/bin/env bash
# The iSCSI/iSER benchmark's guest half: runs INSIDE the soft-RoCE VM (scripts/vm/run.sh) as
# root, from the repository root. Started by scripts/bench/iscsi.mjs, which parses what this
# prints; not meant to be run on the host.
#
#   bash scripts/bench/iscsi-guest.sh [--runtime S] [--ramp S] [--targets "NAME ..."]
#                                     [--jobs "NAME ..."] [--prefill 0|1] [--rounds N]
#                                     [--rt-dir VARIANT=DIR ...]
#
# Rounds: every selected job against every selected target, --rounds times (default 1), the
# order of the targets rotated by one each round, so that a slow phase of the host (or of the
# VM) falls on different targets in different rounds; every record carries its "round".
# A/B: a target name may carry a variant, rdma-target-iser@A, whose daemon is DIR/dist/cli/main.js
# of --rt-dir A=DIR (a worktree of another commit) instead of this repository's.
#
# Eight targets, one at a time, each on a 512 MiB RAM LUN; iSCSI at 10.77.0.1:3260, SRP over
# RDMA/CM at 10.77.0.1:5555:
#   rdma-target-iser rdma-target-tcp   this project (node dist/cli/main.js --debug)
#   lio-iser lio-tcp                   LIO, configured through configfs (rd_mcp ramdisk)
#   tgt-iser tgt-tcp                   tgtd (Debian), a tmpfs-backed 512 MiB file
#   rdma-target-srp                    this project's SRP target port (config "srp" section)
#   lio-srp                            LIO's ib_srpt (configfs: rdma_cm_port, port GUID, ACL)
# The same fio jobs run against each (libaio, direct, time_based, on the raw disk of the
# kernel initiator: ib_iser, iscsi_tcp or ib_srp); raw RDMA WRITE bandwidth (ib_write_bw -R,
# 128 KiB, rxe1 -> 10.77.0.1) is measured before and after, in the same VM.
#
# Output: human-readable "bench: ..." lines, and one machine-readable line per result,
# "BENCH {json}" (types env, raw_rdma, target, job, log, note). At the end every BENCH record
# is printed again between BENCH-REPLAY-BEGIN/END as "BENCHR {json}", so a record that a
# kernel message broke on the console can still be read. A target that cannot be set up is
# reported ("status":"failed","reason":...) and the run goes on with the next one.
set -uo pipefail

RUNTIME=8
RAMP=2
PREFILL=1
# Unmeasured mixed I/O on every target before its first job. A fresh Node process runs its
# first seconds unoptimised: under TCG a new daemon served qd1 at 182 IOPS in its first 5 s,
# 446 in the next 5 and 600-730 from 15 s on (V8 compiling on its worker threads meanwhile);
# a kernel or C target needs none, and gets the same.
WARMUP=20
TARGETS="rdma-target-iser lio-iser tgt-iser rdma-target-tcp lio-tcp tgt-tcp rdma-target-srp lio-srp"
ALL_JOBS="randread-4k-qd32 randwrite-4k-qd32 randread-4k-qd1 read-128k-qd8 write-128k-qd8 read-1m-qd4"
JOBS=$ALL_JOBS
ROUNDS=1
declare -A RT_DIRS=()
while (($#)); do
  case "$1" in
    --runtime) RUNTIME=$2; shift 2 ;;
    --ramp) RAMP=$2; shift 2 ;;
    --targets) TARGETS=$2; shift 2 ;;
    --jobs) JOBS=$2; shift 2 ;;
    --prefill) PREFILL=$2; shift 2 ;;
    --warmup) WARMUP=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --rt-dir) RT_DIRS[${2%%=*}]=${2#*=}; shift 2 ;;
    *) echo "iscsi-guest: unknown argument $1" >&2; exit 2 ;;
  esac
done

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root" || exit 1
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

IP=10.77.0.1
PORT=3260
PORTAL=$IP:$PORT
SRP_PORT=5555
# ib_srp logs in through the port of rxe0: 10.77.0.1 is rxe0's address (loopback, see
# docs/rxe-vm.md); from srp-rxe1-1 add_target fails while both addresses are local.
SRP_HCA=rxe0
SRP_ADD=/sys/class/infiniband_srp/srp-$SRP_HCA-1/add_target
# RDMA/CM logins are named by IP address (LIO srpt: "%pIS" of the connection's address): the
# ACL both SRP targets get.
SRP_ACL=$IP
INITIATOR=iqn.2025-01.org.rdma-target:vm
LUN_BYTES=$((512 * 1024 * 1024))
W=/run/bench
CFS=/sys/kernel/config/target
RESULTS=$W/results.ndjson
mkdir -p "$W"
: >"$RESULTS"

say() { echo "bench: $*"; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
# emit JSON: one BENCH record (compact JSON) on stdout and in the replay file.
ROUND=0
emit() {
  local j
  j=$(jq -c --argjson round "$ROUND" 'if has("target") and (has("round") | not) then . + {round:$round} else . end' <<<"$1" 2>/dev/null)
  [[ -n $j && $j == "{"* ]] || j=$(jq -nc --arg raw "$1" '{type:"note",text:"unparsable record",raw:$raw}')
  echo "BENCH $j"
  echo "$j" >>"$RESULTS"
}
# tail_json FILE [N]: the last N lines of FILE as a JSON string.
tail_json() { tail -n "${2:-40}" "$1" 2>/dev/null | cut -c1-400 | jq -Rs . ; }
dmesg_json() { dmesg 2>/dev/null | tail -n "${1:-25}" | cut -c1-300 | jq -Rs . ; }

# ------------------------------------------------------------------ environment

say "runtime ${RUNTIME}s + ramp ${RAMP}s per job; $ROUNDS round(s); targets: $TARGETS; jobs: $JOBS"
modprobe -a ib_iser iscsi_tcp ib_srp sd_mod 2>&1 | sed 's/^/bench: modprobe: /'
mkdir -p /etc/iscsi /run/lock/iscsi /var/lib/iscsi /etc/target/pr /var/target/pr
echo "InitiatorName=$INITIATOR" >/etc/iscsi/initiatorname.iscsi
# open-iscsi's packaged iscsid.conf (the host's) gives the session defaults; each node record
# then gets replacement_timeout 20 s instead of 120, so I/O to a dead target fails sooner.
touch /etc/iscsi/iscsid.conf
rm -rf /etc/iscsi/nodes /etc/iscsi/send_targets /var/lib/iscsi/nodes /var/lib/iscsi/send_targets
iscsid || say "iscsid failed to start"
sleep 0.5

emit "$(jq -nc --arg kernel "$(uname -r)" --arg cpus "$(nproc)" --arg fio "$(fio --version 2>&1)" \
  --arg node "$(node --version 2>&1)" --arg tgt "$(tgtd --version 2>&1 | head -1)" \
  --arg iscsiadm "$(iscsiadm --version 2>&1 | head -1)" \
  --arg mem_kib "$(awk '/MemTotal/ {print $2}' /proc/meminfo)" \
  --arg rdma "$(ls /sys/class/infiniband 2>/dev/null | tr '\n' ' ')" \
  --argjson runtime "$RUNTIME" --argjson ramp "$RAMP" --arg targets "$TARGETS" --arg jobs "$JOBS" --argjson rounds "$ROUNDS" --argjson prefill "$PREFILL" --argjson warmup "$WARMUP" \
  '{type:"env",kernel:$kernel,cpus:($cpus|tonumber),mem_kib:($mem_kib|tonumber),fio:$fio,node:$node,tgt:$tgt,
    iscsiadm:$iscsiadm,rdma_devices:$rdma,runtime_s:$runtime,ramp_s:$ramp,rounds:$rounds,prefill:($prefill == 1),warmup_s:$warmup,
    targets:($targets|split(" ")),jobs:($jobs|split(" "))}')"

# ------------------------------------------------------------------ raw RDMA WRITE

raw_rdma() { # RUN-LABEL
  local label=$1 srv cli line i
  ib_write_bw -R -d rxe0 -s 131072 -D 5 >"$W/ibw-server.log" 2>&1 &
  srv=$!
  for i in 1 2 3 4 5 6; do
    sleep $((i == 1 ? 2 : 1))
    timeout -k 5 60 ib_write_bw -R -d rxe1 -s 131072 -D 5 "$IP" >"$W/ibw-client.log" 2>&1 && break
  done
  sleep 0.5
  kill "$srv" 2>/dev/null
  wait "$srv" 2>/dev/null
  # perftest's result row follows the header "#bytes #iterations BW peak[MB/sec] BW average[MB/sec] MsgRate[Mpps]".
  line=$(awk '/BW average\[MB\/sec\]/ {f=1; next} f && $1 ~ /^[0-9]+$/ {print; exit}' "$W/ibw-client.log")
  if [[ -n $line ]]; then
    read -r bytes iters peak avg rate _ <<<"$line"
    say "raw RDMA WRITE 128 KiB ($label): $avg MB/s (perftest MB = MiB)"
    emit "$(jq -nc --arg run "$label" --argjson bytes "$bytes" --argjson iters "$iters" --argjson peak "$peak" \
      --argjson avg "$avg" --argjson rate "$rate" --arg line "$line" \
      '{type:"raw_rdma",run:$run,status:"ok",size:$bytes,iterations:$iters,bw_peak_MiBps:$peak,bw_avg_MiBps:$avg,msg_rate_Mpps:$rate,
        command:"ib_write_bw -R -d rxe0 -s 131072 -D 5 & ib_write_bw -R -d rxe1 -s 131072 -D 5 10.77.0.1",line:$line}')"
  else
    say "raw RDMA WRITE ($label) failed:"; tail -n 20 "$W/ibw-client.log"
    emit "$(jq -nc --arg run "$label" --argjson tail "$(tail_json "$W/ibw-client.log" 20)" \
      '{type:"raw_rdma",run:$run,status:"failed",reason:"ib_write_bw gave no result line",log:$tail}')"
  fi
}

# ------------------------------------------------------------------ exclusive portal

# Anything still listening on port 3260 or 5555 (TCP socket or RDMA/CM listener)?
port_holders() {
  local h="" p
  ss -Htln "sport = :$PORT" 2>/dev/null | grep -q . && h+="tcp:$(ss -Htlnp "sport = :$PORT" | tr -s ' ' | cut -c1-200) "
  for p in $PORT $SRP_PORT; do
    rdma resource show cm_id 2>/dev/null | grep -i 'listen' | grep -q ":$p\b" && h+="rdma_cm:$(rdma resource show cm_id | grep -i listen | grep ":$p" | tr -s ' ' | head -3) "
  done
  [[ -d /sys/class/srp_remote_ports ]] && ls /sys/class/srp_remote_ports | grep -q . && h+="srp_remote_ports($(ls /sys/class/srp_remote_ports | tr '\n' ' ')) "
  ls -d "$CFS"/srpt/*:* >/dev/null 2>&1 && h+="srpt($(ls -d "$CFS"/srpt/*:* | tr '\n' ' ')) "
  pgrep -x tgtd >/dev/null && h+="tgtd(pids $(pgrep -x tgtd | tr '\n' ' ')) "
  [[ -n ${RT_PID:-} ]] && kill -0 "$RT_PID" 2>/dev/null && h+="rdma-target(pid $RT_PID) "
  ls -d "$CFS"/iscsi/iqn.* >/dev/null 2>&1 && h+="lio($(ls -d "$CFS"/iscsi/iqn.* | tr '\n' ' ')) "
  echo "$h"
}
wait_port_free() {
  local i h
  for i in $(seq 1 40); do
    h=$(port_holders)
    [[ -z $h ]] && return 0
    sleep 0.5
  done
  echo "$h"
  return 1
}

# ------------------------------------------------------------------ targets

REASON=""
CUR=""            # the target row being run (rdma-target-iser, lio-srp, ...)
CUR_TR=""         # its transport: iser, tcp or srp
SRP_ID=""         # the SRP target port id (id_ext = ioc_guid) of the SRP target being run
TARGET_LOG=""     # the file whose tail explains a failure
TARGET_PID=""     # a user-space target's pid, for liveness and CPU time
IQN=""

# The SRP target port id both SRP targets answer to: rxe0's node GUID, which is what LIO's
# srpt_service_guid defaults to (the node GUID of the first RDMA device, rxe0 here).
srp_node_guid() { tr -d ':\n' <"/sys/class/infiniband/$SRP_HCA/node_guid"; }

# rdma-target: this project, both portals as documented, fresh process per row. SRP: only the
# "srp" section (port 5555, the same RAM LUN size, an ACL for the initiator's address as LIO
# srpt needs), no iSCSI target.
RT_PID=""
setup_rdma-target() { # TRANSPORT
  local tr=$1 i
  IQN=iqn.2025-01.org.rdma-target:bench
  mkdir -p "$W/state"
  if [[ $tr == srp ]]; then
    SRP_ID=$(srp_node_guid)
    [[ $SRP_ID =~ ^[0-9a-f]{16}$ ]] || { REASON="cannot read /sys/class/infiniband/$SRP_HCA/node_guid (got '$SRP_ID')"; return 1; }
    cat >"$W/rdma-target.json" <<EOF
{"targets":[],"backstores":[{"name":"ram0","type":"ram","size":"512M"}],"srp":{"portals":[{"address":"$IP","port":$SRP_PORT}],"targetPortId":{"idExt":"$SRP_ID","iocGuid":"$SRP_ID"},"luns":[{"lun":0,"backstore":"ram0"}],"acls":[{"initiator":"$SRP_ACL"}]},"stateDir":"$W/state","control":{"socket":"$W/rdma-target.sock"}}
EOF
  else
    cat >"$W/rdma-target.json" <<EOF
{"targets":[{"iqn":"$IQN","tpgs":[{"tag":1,"portals":[{"address":"$IP","port":$PORT,"transport":"iser"},{"address":"$IP","port":$PORT,"transport":"tcp"}],"luns":[{"lun":0,"backstore":{"type":"ram","size":"512M"}}],"attributes":{"generateNodeAcls":true}}]}],"stateDir":"$W/state","control":{"socket":"$W/rdma-target.sock"}}
EOF
  fi
  TARGET_LOG=$W/rdma-target-$tr${VARIANT:+-$VARIANT}.log
  local dir=$root
  if [[ -n $VARIANT ]]; then
    dir=${RT_DIRS[$VARIANT]:-}
    [[ -n $dir && -f $dir/dist/cli/main.js ]] || { REASON="no built rdma-target for variant $VARIANT (--rt-dir $VARIANT=${dir:-?})"; return 1; }
  fi
  node "$dir/dist/cli/main.js" --log-format human --config "$W/rdma-target.json" --debug >"$TARGET_LOG" 2>&1 &
  RT_PID=$!
  TARGET_PID=$RT_PID
  for i in $(seq 1 600); do
    grep -q "listening on $tr " "$TARGET_LOG" && return 0
    if ! kill -0 "$RT_PID" 2>/dev/null; then
      wait "$RT_PID"; REASON="rdma-target exited $? before listening on $tr"; RT_PID="" TARGET_PID=""; return 1
    fi
    sleep 0.1
  done
  REASON="rdma-target did not print 'listening on $tr' within 60 s"
  return 1
}
teardown_rdma-target() {
  local i rc
  [[ -z $RT_PID ]] && return 0
  kill -TERM "$RT_PID" 2>/dev/null
  for i in $(seq 1 200); do kill -0 "$RT_PID" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$RT_PID" 2>/dev/null; then
    say "rdma-target did not exit 20 s after SIGTERM; SIGKILL"
    kill -KILL "$RT_PID"
  fi
  wait "$RT_PID" 2>/dev/null
  rc=$?
  say "rdma-target exited $rc"
  emit "$(jq -nc --arg t "$CUR" --argjson tail "$(tail_json "$TARGET_LOG" 15)" '{type:"target_log",target:$t,tail:$tail}')"
  ((rc != 0)) && emit "$(jq -nc --arg t "$CUR" --argjson rc "$rc" --argjson tail "$(tail_json "$TARGET_LOG" 30)" \
    '{type:"note",target:$t,text:("rdma-target exit status at teardown (SIGTERM, then SIGKILL after 20 s): " + ($rc|tostring)),log:$tail}')"
  RT_PID=""
  TARGET_PID=""
  return 0
}

# LIO through configfs: rd_mcp ramdisk, one TPG in demo mode, np 10.77.0.1:3260 (+ iser=1).
LIO_MODS_LOADED=""
lio_tpg() { echo "$CFS/iscsi/$IQN/tpgt_1"; }
setup_lio() { # TRANSPORT
  local tr=$1 tpg dev=$CFS/core/rd_mcp_0/ram0 a
  [[ $tr == srp ]] && { setup_lio_srpt; return; }
  IQN=iqn.2003-01.org.linux-iscsi.rdma-target-vm:bench-lio
  TARGET_LOG=$W/lio-dmesg.log
  if [[ -z $LIO_MODS_LOADED ]]; then
    modprobe -a target_core_mod iscsi_target_mod ib_isert >"$W/lio-modprobe.log" 2>&1 ||
      { REASON="modprobe target_core_mod iscsi_target_mod ib_isert: $(head -c 200 "$W/lio-modprobe.log")"; return 1; }
    LIO_MODS_LOADED=1
  fi
  # The iSCSI fabric's configfs group appears when it is created.
  [[ -d $CFS/iscsi ]] || mkdir "$CFS/iscsi" 2>"$W/lio-err" || { REASON="mkdir $CFS/iscsi: $(head -c 200 "$W/lio-err")"; return 1; }
  tpg=$(lio_tpg)
  lio_do() { "$@" 2>"$W/lio-err" || { REASON="LIO configfs: $* ($(head -c 200 "$W/lio-err"))"; return 1; }; }
  lio_w() { echo "$1" 2>"$W/lio-err" >"$2" || { REASON="LIO configfs: echo $1 > ${2#"$CFS"/} ($(head -c 200 "$W/lio-err"))"; return 1; }; }
  lio_do mkdir -p "$dev" || return 1
  lio_w "rd_pages=$((LUN_BYTES / 4096))" "$dev/control" || return 1
  lio_w 1 "$dev/enable" || return 1
  lio_w "$(cat /proc/sys/kernel/random/uuid)" "$dev/wwn/vpd_unit_serial" || return 1
  lio_do mkdir -p "$tpg/lun/lun_0" || return 1
  lio_do ln -s "$dev" "$tpg/lun/lun_0/ram0" || return 1
  lio_do mkdir "$tpg/np/$PORTAL" || return 1
  if [[ $tr == iser ]]; then lio_w 1 "$tpg/np/$PORTAL/iser" || return 1; fi
  for a in generate_node_acls=1 demo_mode_write_protect=0 authentication=0 cache_dynamic_acls=1; do
    lio_w "${a#*=}" "$tpg/attrib/${a%=*}" || return 1
  done
  lio_w 1 "$tpg/enable" || return 1
  return 0
}
teardown_lio() {
  local tpg
  [[ $CUR_TR == srp ]] && { teardown_lio_srpt; return 0; }
  [[ -n $IQN && -d $CFS/iscsi/$IQN ]] || { teardown_lio_core; return 0; }
  tpg=$(lio_tpg)
  [[ -e $tpg/enable ]] && echo 0 >"$tpg/enable" 2>/dev/null
  rm -f "$tpg/lun/lun_0/ram0" 2>/dev/null
  rmdir "$tpg/lun/lun_0" 2>/dev/null
  [[ -e $tpg/np/$PORTAL/iser ]] && [[ $(cat "$tpg/np/$PORTAL/iser") == 1 ]] && echo 0 >"$tpg/np/$PORTAL/iser" 2>/dev/null
  rmdir "$tpg/np/$PORTAL" 2>/dev/null
  rmdir "$tpg" 2>/dev/null
  rmdir "$CFS/iscsi/$IQN" 2>/dev/null || say "LIO: cannot remove $CFS/iscsi/$IQN"
  teardown_lio_core
  dmesg | tail -n 40 >"$W/lio-dmesg.log"
  return 0
}
teardown_lio_core() {
  rmdir "$CFS/core/rd_mcp_0/ram0" 2>/dev/null
  rmdir "$CFS/core/rd_mcp_0" 2>/dev/null
  return 0
}

# LIO srpt (kernel 6.1, drivers/infiniband/ulp/srpt/ib_srpt.c):
# - RDMA/CM: writing a port number to srpt/discovery_auth/rdma_cm_port makes srpt listen on
#   the wildcard address at that port (IPv6 any, else IPv4 any); 0 closes the listener.
# - A login arrives on an HCA port (rxe0 port 1 here); srpt checks that id_ext and ioc_guid
#   both equal srpt_service_guid, then sets up the session only in TPGs under that port's two
#   configfs names: the port GUID "xxxx:xxxx:xxxx:xxxx" (tried with the login's name, for
#   RDMA/CM the IP address, "%pIS") and the GID "0x<32 hex>" (tried with the initiator port id).
# - srpt has no demo mode: the initiator needs a node ACL with the LUN mapped into it
#   (acls/<ip>/lun_0 -> lun/lun_0); an ACL without a mapped LUN logs in and shows no disk.
# - the TPG directory's name is free (srpt_make_tpg ignores it); its enable opens the port.
LIO_SRPT_LOADED=""
LIO_SRPT_WWN=""
lio_srpt_wwn() { # rxe0 port 1's GUID (the interface id of GID 0), as srpt names it
  local gid
  gid=$(cat "/sys/class/infiniband/$SRP_HCA/ports/1/gids/0" 2>/dev/null) || return 1
  [[ ${#gid} == 39 ]] || return 1
  echo "${gid:20:19}"
}
setup_lio_srpt() {
  local wwn tpg acl dev=$CFS/core/rd_mcp_0/ram0
  TARGET_LOG=$W/lio-dmesg.log
  lio_do() { "$@" 2>"$W/lio-err" || { REASON="LIO configfs: $* ($(head -c 200 "$W/lio-err"))"; return 1; }; }
  lio_w() { echo "$1" 2>"$W/lio-err" >"$2" || { REASON="LIO configfs: echo $1 > ${2#"$CFS"/} ($(head -c 200 "$W/lio-err"))"; return 1; }; }
  if [[ -z $LIO_SRPT_LOADED ]]; then
    modprobe -a target_core_mod ib_srpt >"$W/lio-modprobe.log" 2>&1 ||
      { REASON="modprobe target_core_mod ib_srpt: $(head -c 200 "$W/lio-modprobe.log")"; return 1; }
    LIO_SRPT_LOADED=1
  fi
  SRP_ID=$(sed 's/^0x//' /sys/module/ib_srpt/parameters/srpt_service_guid 2>/dev/null)
  [[ $SRP_ID =~ ^[0-9a-f]{16}$ ]] || { REASON="cannot read /sys/module/ib_srpt/parameters/srpt_service_guid (got '$SRP_ID')"; return 1; }
  wwn=$(lio_srpt_wwn) || { REASON="cannot read GID 0 of $SRP_HCA port 1"; return 1; }
  [[ -d $CFS/srpt ]] || mkdir "$CFS/srpt" 2>"$W/lio-err" || { REASON="mkdir $CFS/srpt: $(head -c 200 "$W/lio-err")"; return 1; }
  lio_do mkdir -p "$dev" || return 1
  lio_w "rd_pages=$((LUN_BYTES / 4096))" "$dev/control" || return 1
  lio_w 1 "$dev/enable" || return 1
  lio_w "$(cat /proc/sys/kernel/random/uuid)" "$dev/wwn/vpd_unit_serial" || return 1
  lio_w "$SRP_PORT" "$CFS/srpt/discovery_auth/rdma_cm_port" || return 1
  LIO_SRPT_WWN=$wwn
  tpg=$CFS/srpt/$wwn/tpgt_1
  acl=$tpg/acls/$SRP_ACL
  lio_do mkdir -p "$tpg/lun/lun_0" || return 1
  lio_do ln -s "$dev" "$tpg/lun/lun_0/ram0" || return 1
  lio_do mkdir -p "$acl/lun_0" || return 1
  lio_do ln -s "$tpg/lun/lun_0" "$acl/lun_0/lun_0" || return 1
  lio_w 1 "$tpg/enable" || return 1
  return 0
}
teardown_lio_srpt() {
  local wwn=${LIO_SRPT_WWN:-$(lio_srpt_wwn)} tpg acl
  tpg=$CFS/srpt/$wwn/tpgt_1
  acl=$tpg/acls/$SRP_ACL
  if [[ -n $wwn && -d $CFS/srpt/$wwn ]]; then
    [[ -e $tpg/enable ]] && echo 0 >"$tpg/enable" 2>/dev/null
    rm -f "$acl/lun_0/lun_0" 2>/dev/null
    rmdir "$acl/lun_0" 2>/dev/null
    rmdir "$acl" 2>/dev/null
    rm -f "$tpg/lun/lun_0/ram0" 2>/dev/null
    rmdir "$tpg/lun/lun_0" 2>/dev/null
    rmdir "$tpg" 2>/dev/null
    rmdir "$CFS/srpt/$wwn" 2>/dev/null || say "LIO: cannot remove $CFS/srpt/$wwn"
  fi
  [[ -e $CFS/srpt/discovery_auth/rdma_cm_port ]] && echo 0 >"$CFS/srpt/discovery_auth/rdma_cm_port" 2>/dev/null
  teardown_lio_core
  dmesg | tail -n 40 >"$W/lio-dmesg.log"
  LIO_SRPT_WWN=""
  return 0
}

# tgt: tgtd in the foreground (no port option), a fully allocated 512 MiB file on tmpfs.
TGT_PID=""
setup_tgt() { # TRANSPORT
  local tr=$1 lld i
  lld=$([[ $tr == iser ]] && echo iser || echo iscsi)
  IQN=iqn.2025-01.org.rdma-target:bench-tgt
  TARGET_LOG=$W/tgtd-$tr.log
  command -v tgtd >/dev/null || { REASON="tgtd not installed (apt-get install tgt on the host)"; return 1; }
  mkdir -p "$W/tgt"
  mountpoint -q "$W/tgt" || mount -t tmpfs -o size=600m tmpfs "$W/tgt" || { REASON="mount tmpfs for tgt"; return 1; }
  dd if=/dev/zero of="$W/tgt/lun.img" bs=1M count=$((LUN_BYTES >> 20)) status=none || { REASON="creating the tmpfs backing file"; return 1; }
  tgtd -f >"$TARGET_LOG" 2>&1 &
  TGT_PID=$!
  TARGET_PID=$TGT_PID
  for i in $(seq 1 100); do
    tgtadm --op show --mode sys >/dev/null 2>&1 && break
    kill -0 "$TGT_PID" 2>/dev/null || { wait "$TGT_PID"; REASON="tgtd exited $? at start-up"; TGT_PID="" TARGET_PID=""; return 1; }
    sleep 0.2
  done
  tgt_do() { tgtadm --lld "$lld" "$@" >"$W/tgt-err" 2>&1 || { REASON="tgtadm --lld $lld $* ($(head -c 200 "$W/tgt-err"))"; return 1; }; }
  tgt_do --op new --mode target --tid 1 -T "$IQN" || return 1
  tgt_do --op new --mode logicalunit --tid 1 --lun 1 -b "$W/tgt/lun.img" || return 1
  tgt_do --op bind --mode target --tid 1 -I ALL || return 1
  tgt_do --op bind --mode target --tid 1 -Q "$INITIATOR" || return 1
  return 0
}
teardown_tgt() {
  local i
  if [[ -n $TGT_PID ]]; then
    tgtadm --op delete --mode target --tid 1 --force >/dev/null 2>&1
    tgtadm --op delete --mode system >/dev/null 2>&1
    for i in $(seq 1 100); do kill -0 "$TGT_PID" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$TGT_PID" 2>/dev/null && { kill -TERM "$TGT_PID"; sleep 1; kill -KILL "$TGT_PID" 2>/dev/null; }
    wait "$TGT_PID" 2>/dev/null
    local rc=$?
    ((rc != 0)) && emit "$(jq -nc --arg t "$CUR" --argjson rc "$rc" --argjson tail "$(tail_json "$TARGET_LOG" 10)" \
      '{type:"note",target:$t,text:("tgtd exit status after tgtadm --op delete --mode system: " + ($rc|tostring) + (if $rc == 139 then " (SIGSEGV)" else "" end)),log:$tail}')"
  fi
  TGT_PID=""
  TARGET_PID=""
  mountpoint -q "$W/tgt" && umount "$W/tgt"
  return 0
}

# ------------------------------------------------------------------ the initiator

IFACE=""
login() {
  local i
  [[ $CUR_TR == srp ]] && { srp_login; return; }
  iscsiadm -m node -o new -T "$IQN" -p "$PORTAL" -I "$IFACE" >"$W/iscsiadm.log" 2>&1 ||
    { REASON="iscsiadm -o new: $(tr '\n' ' ' <"$W/iscsiadm.log" | head -c 300)"; return 1; }
  iscsiadm -m node -T "$IQN" -p "$PORTAL" -I "$IFACE" -o update -n node.session.timeo.replacement_timeout -v 20 >/dev/null 2>&1
  timeout -k 5 60 iscsiadm -m node -T "$IQN" -p "$PORTAL" -I "$IFACE" --login >"$W/iscsiadm.log" 2>&1 ||
    { REASON="login failed: $(tr '\n' ' ' <"$W/iscsiadm.log" | head -c 300)"; return 1; }
  DISK=""
  for i in $(seq 1 150); do
    DISK=$(iscsiadm -m session -P3 2>/dev/null | sed -n 's/.*Attached scsi disk \(sd[a-z]*\).*/\1/p' | head -1)
    [[ -n $DISK && -b /dev/$DISK ]] && break
    DISK=""
    sleep 0.2
  done
  [[ -n $DISK ]] || { REASON="logged in, but no disk attached within 30 s"; return 1; }
  local size
  size=$(blockdev --getsize64 "/dev/$DISK" 2>/dev/null)
  [[ $size == "$LUN_BYTES" ]] || { REASON="/dev/$DISK is $size bytes, not $LUN_BYTES"; return 1; }
  return 0
}
logout() {
  [[ $CUR_TR == srp ]] && { srp_logout; return 0; }
  [[ -z $IQN || -z $IFACE ]] && return 0
  timeout -k 5 60 iscsiadm -m node -T "$IQN" -p "$PORTAL" -I "$IFACE" --logout >/dev/null 2>&1
  iscsiadm -m node -T "$IQN" -p "$PORTAL" -I "$IFACE" -o delete >/dev/null 2>&1
  if iscsiadm -m session >/dev/null 2>&1; then
    say "sessions left after logout; logging out of everything"
    timeout -k 5 60 iscsiadm -m node -U all >/dev/null 2>&1
    timeout -k 5 30 iscsiadm -m session -u >/dev/null 2>&1
  fi
  return 0
}
# SRP with the kernel's ib_srp: add_target with dest= (RDMA/CM), the initiator's defaults
# (ch_count min(4, CPUs) = 2 here, queue_size 64, cmd_sg_entries 12, immediate data); the disk
# is the one behind the SCSI host of the new SRP remote port (port-<host>:<n>).
srp_ports() { ls /sys/class/srp_remote_ports 2>/dev/null; }
SRP_LOGIN=""
SRP_HOST=""
srp_login() {
  local i h d ok=""
  SRP_LOGIN="id_ext=$SRP_ID,ioc_guid=$SRP_ID,dest=$IP:$SRP_PORT"
  [[ -e $SRP_ADD ]] || { REASON="$SRP_ADD does not exist (ib_srp not loaded, or no $SRP_HCA)"; return 1; }
  for i in $(seq 1 20); do
    if timeout -k 5 90 bash -c 'echo "$1" >"$2"' _ "$SRP_LOGIN" "$SRP_ADD" 2>"$W/srp-err"; then ok=1; break; fi
    # ib_srp forgets a removed target port only when its removal work has run; until then
    # add_target fails and dmesg says "Already connected".
    dmesg | tail -n 5 | grep -q 'Already connected' || break
    sleep 0.5
  done
  [[ -n $ok ]] || { REASON="echo $SRP_LOGIN > $SRP_ADD: $(tr '\n' ' ' <"$W/srp-err" | head -c 150); dmesg: $(dmesg | tail -n 4 | cut -c1-160 | tr '\n' ' ')"; return 1; }
  DISK="" SRP_HOST=""
  for i in $(seq 1 150); do
    for h in $(srp_ports); do
      h=${h#port-}; h=${h%%:*}
      for d in /sys/class/scsi_device/"$h":*/device/block/*; do
        [[ -e $d ]] && { DISK=${d##*/}; SRP_HOST=$h; }
      done
    done
    [[ -n $DISK && -b /dev/$DISK ]] && break
    DISK=""
    sleep 0.2
  done
  [[ -n $DISK ]] || { REASON="logged in ($(srp_ports | tr '\n' ' ')), but no disk attached within 30 s; dmesg: $(dmesg | tail -n 4 | cut -c1-160 | tr '\n' ' ')"; return 1; }
  local size
  size=$(blockdev --getsize64 "/dev/$DISK" 2>/dev/null)
  [[ $size == "$LUN_BYTES" ]] || { REASON="/dev/$DISK is $size bytes, not $LUN_BYTES"; return 1; }
  return 0
}
srp_logout() {
  local p i
  for p in /sys/class/srp_remote_ports/*; do [[ -e $p/delete ]] && echo 1 >"$p/delete" 2>/dev/null; done
  for i in $(seq 1 150); do [[ -z $(srp_ports) ]] && break; sleep 0.2; done
  [[ -z $(srp_ports) ]] || say "SRP remote ports still there 30 s after delete: $(srp_ports | tr '\n' ' ')"
  SRP_HOST=""
  return 0
}
# What ib_srp set up, from its SCSI host's attributes, as a JSON object.
srp_params() {
  local h=/sys/class/scsi_host/host$SRP_HOST a args=()
  for a in ch_count req_lim cmd_sg_entries allow_ext_sg can_queue sg_tablesize comp_vector tl_retry_count local_ib_device; do
    args+=(--arg "$a" "$(cat "$h/$a" 2>/dev/null)")
  done
  jq -nc "${args[@]}" --arg login "$SRP_LOGIN" --arg host "host$SRP_HOST" \
    '{add_target:$login,scsi_host:$host,ch_count:$ch_count,req_lim:$req_lim,cmd_sg_entries:$cmd_sg_entries,allow_ext_sg:$allow_ext_sg,
      can_queue:$can_queue,sg_tablesize:$sg_tablesize,comp_vector:$comp_vector,tl_retry_count:$tl_retry_count,local_ib_device:$local_ib_device}' || echo '{}'
}
# Kernel-side trouble the initiator logs (and recovers from, so fio may never see it).
KEV_RE='detected conn error|session recovery|ping timeout|nop.*timed out|timed out|abort|rejecting I/O|I/O error|iser.*(err|fail)|isert.*(err|fail)|reinstat|ib_srp.*(reconnect|fail|error)|ib_srpt.*(err|fail|reject)'
# iSCSI: "detected conn error" lines; SRP: ib_srp's reconnects and failed work completions.
conn_errors() {
  if [[ $CUR_TR == srp ]]; then dmesg 2>/dev/null | grep -cE 'ib_srp: .*(reconnect|failed)'
  else dmesg 2>/dev/null | grep -c 'detected conn error'; fi
}
dmesg_lines() { dmesg 2>/dev/null | wc -l; }
kernel_events() { # FROM-LINE: the trouble lines dmesg got since then, as JSON
  local from=$1
  dmesg 2>/dev/null | tail -n +"$((from + 1))" | grep -E "$KEV_RE" | grep -v 'Power-on or device reset' | tail -n 20 | cut -c1-300 | jq -Rs .
}
session_alive() {
  if [[ $CUR_TR == srp ]]; then [[ -n $(srp_ports) && -b /dev/$DISK ]]; return; fi
  iscsiadm -m session 2>/dev/null | grep -q "$IQN" && [[ -b /dev/$DISK ]]
}
# The negotiated iSCSI parameters of the one session, as a JSON object.
session_params() {
  iscsiadm -m session -P2 2>/dev/null |
    awk '/Negotiated iSCSI params/ {f=1; next} f && /: / {sub(/^[ \t]+/, ""); i=index($0, ": "); print substr($0,1,i-1) "\t" substr($0,i+2)}' |
    jq -Rnc '[inputs | split("\t") | {(.[0]): .[1]}] | add // {}' || echo '{}'
}
disk_info() {
  local q=/sys/block/$DISK
  jq -nc --arg d "$DISK" --arg mx "$(cat $q/queue/max_sectors_kb 2>/dev/null)" --arg hw "$(cat $q/queue/max_hw_sectors_kb 2>/dev/null)" \
    --arg qd "$(cat $q/device/queue_depth 2>/dev/null)" --arg sch "$(cat $q/queue/scheduler 2>/dev/null)" \
    '{disk:$d,max_sectors_kb:$mx,max_hw_sectors_kb:$hw,queue_depth:$qd,scheduler:$sch}'
}

# ------------------------------------------------------------------ fio

job_args() { # JOB -> "rw bs iodepth dir"
  case "$1" in
    randread-4k-qd32) echo "randread 4k 32 read" ;;
    randwrite-4k-qd32) echo "randwrite 4k 32 write" ;;
    randread-4k-qd1) echo "randread 4k 1 read" ;;
    read-128k-qd8) echo "read 128k 8 read" ;;
    write-128k-qd8) echo "write 128k 8 write" ;;
    read-1m-qd4) echo "read 1m 4 read" ;;
    *) return 1 ;;
  esac
}
cpu_ticks() { awk '/^cpu / {print $2+$3+$4+$7+$8, $2+$3+$4+$5+$6+$7+$8}' /proc/stat; }
# A user-space target's CPU: the scheduler's run time of its threads, in ns
# (/proc/PID/task/*/schedstat). utime + stime in /proc/PID/stat are the same run time
# (the kernel scales the tick samples to it) but in 10 ms units: over a 6 s job that is
# up to ±8 µs/IO per thread at 2,500 I/Os. A thread that exits within the window is lost
# here; the targets keep theirs.
proc_cpu_ns() {
  local f v s=0
  [[ -n $1 ]] || { echo 0; return; }
  for f in /proc/$1/task/*/schedstat; do read -r v _ <"$f" 2>/dev/null && s=$((s + v)); done
  echo "$s"
}

# The measured window of a job is fio's after its ramp: CPU is sampled when the ramp ends and
# when fio exits, so CPU per I/O divides the CPU of that window by the I/Os fio counted in it.
run_job() { # JOB
  local job=$1 rw bs qd dir b0 t0 b1 t1 p0 p1 rc res busy tcpu hz fpid w0 w1 win
  read -r rw bs qd dir <<<"$(job_args "$job")" || { REASON="unknown job $job"; return 1; }
  hz=$(getconf CLK_TCK)
  local ce0 ce1
  ce0=$(conn_errors)
  timeout -k 10 $((RUNTIME + RAMP + 90)) fio --name="$job" --filename="/dev/$DISK" --ioengine=libaio --direct=1 \
    --rw="$rw" --bs="$bs" --iodepth="$qd" --numjobs=1 --time_based --runtime="$RUNTIME" --ramp_time="$RAMP" \
    --lat_percentiles=1 --output-format=json --output="$W/fio.json" >"$W/fio.err" 2>&1 &
  fpid=$!
  sleep "$RAMP"
  read -r b0 t0 <<<"$(cpu_ticks)"
  p0=$(proc_cpu_ns "$TARGET_PID")
  w0=$(now)
  wait "$fpid"
  rc=$?
  read -r b1 t1 <<<"$(cpu_ticks)"
  p1=$(proc_cpu_ns "$TARGET_PID")
  w1=$(now)
  ce1=$(conn_errors)
  win=$(awk -v a="$w0" -v b="$w1" 'BEGIN { printf "%.2f", b - a }')
  busy=$(awk -v a=$((b1 - b0)) -v b=$((t1 - t0)) 'BEGIN { printf "%.1f", (b > 0 ? 100 * a / b : 0) }')
  tcpu=$(awk -v a=$((p1 - p0)) 'BEGIN { printf "%.4f", a / 1e9 }')
  # Guest-wide busy CPU seconds over the window (both vCPUs; LIO's work shows only here).
  local gcpu
  gcpu=$(awk -v a=$((b1 - b0)) -v hz="$hz" 'BEGIN { printf "%.2f", a / hz }')
  if ((rc != 0)) || ! jq -e '.jobs[0]' "$W/fio.json" >/dev/null 2>&1; then
    # The first error line says what happened; the rest repeat it for other offsets.
    REASON="fio exit $rc: $(grep -v '^$' "$W/fio.err" | grep -m1 -i 'error\|fail' || grep -v '^$' "$W/fio.err" | tail -n 1)"
    REASON=${REASON:0:300}
    ((rc == 124 || rc == 137)) && REASON="fio timed out after $((RUNTIME + RAMP + 90)) s (killed); $REASON"
    return 1
  fi
  res=$(jq -c --arg t "$CUR" --arg j "$job" --arg dir "$dir" --arg rw "$rw" --arg bs "$bs" --argjson qd "$qd" \
    --argjson busy "$busy" --argjson tcpu "$tcpu" --argjson rc "$rc" --argjson ce "$((ce1 - ce0))" \
    --argjson win "$win" --argjson gcpu "$gcpu" --argjson tp "$([[ -n $TARGET_PID ]] && echo true || echo false)" \
    '.jobs[0] as $x | $x[$dir] as $d |
     {type:"job",target:$t,job:$j,status:(if $x.error == 0 then "ok" else "failed" end),
      reason:(if $x.error == 0 then null else "fio error \($x.error)" end),
      rw:$rw,bs:$bs,iodepth:$qd,dir:$dir,
      iops:$d.iops,bw_kib:$d.bw,io_kib:$d.io_kbytes,runtime_ms:$d.runtime,total_ios:$d.total_ios,
      lat_mean_ns:$d.lat_ns.mean,lat_stddev_ns:$d.lat_ns.stddev,lat_max_ns:$d.lat_ns.max,
      lat_p50_ns:$d.lat_ns.percentile["50.000000"],lat_p99_ns:$d.lat_ns.percentile["99.000000"],
      lat_p999_ns:$d.lat_ns.percentile["99.900000"],clat_mean_ns:$d.clat_ns.mean,
      fio_usr_cpu:$x.usr_cpu,fio_sys_cpu:$x.sys_cpu,guest_cpu_busy_pct:$busy,cpu_window_s:$win,
      target_proc_cpu_s:(if $tp then $tcpu else null end),target_cpu_source:"schedstat",guest_cpu_s:$gcpu,
      target_cpu_us_per_io:(if $tp and $d.total_ios > 0 then ($tcpu * 1e6 / $d.total_ios) else null end),
      guest_cpu_us_per_io:(if $d.total_ios > 0 then ($gcpu * 1e6 / $d.total_ios) else null end),
      conn_errors:$ce}' "$W/fio.json")
  emit "$res"
  say "$CUR $job: $(jq -r '"\(.iops|floor) IOPS, \(.bw_kib/1024*10|floor/10) MiB/s, mean \(.lat_mean_ns/1000|floor) us, p99 \(.lat_p99_ns/1000|floor) us" + (if .conn_errors > 0 then ", \(.conn_errors) connection error(s)" else "" end)' <<<"$res")"
  [[ $(jq -r .status <<<"$res") == ok ]] || { REASON=$(jq -r .reason <<<"$res"); return 2; }
  return 0
}

prefill() {
  local t0 out
  t0=$(now)
  # At most 180 s (a slow target gets a partly written LUN; prefill_MiB says how much).
  timeout -k 10 300 fio --name=prefill --filename="/dev/$DISK" --ioengine=libaio --direct=1 --rw=write --bs=1m \
    --iodepth=8 --size=100% --runtime=180 --output-format=json --output="$W/prefill.json" >"$W/fio.err" 2>&1 ||
    { REASON="prefill (sequential 1 MiB write of the whole LUN) failed: $(tail -n 3 "$W/fio.err" | tr '\n' ' ' | head -c 300)"; return 1; }
  PREFILL_S=$(since "$t0")
  PREFILL_MIBPS=$(jq '.jobs[0].write.bw / 1024' "$W/prefill.json")
  PREFILL_MIB=$(jq '.jobs[0].write.io_kbytes / 1024' "$W/prefill.json")
  return 0
}

target_failed() { # PHASE: a setup failure; reports it with the logs that explain it
  local phase=$1
  say "$CUR: FAILED ($phase): $REASON"
  [[ -n $TARGET_LOG && -f $TARGET_LOG ]] && { say "--- $TARGET_LOG (tail)"; tail -n 40 "$TARGET_LOG"; say "---"; }
  emit "$(jq -nc --arg t "$CUR" --arg phase "$phase" --arg r "$REASON" --argjson tail "$( [[ -n $TARGET_LOG ]] && tail_json "$TARGET_LOG" 60 || echo '""')" \
    --argjson dmesg "$(dmesg_json 25)" '{type:"target",target:$t,status:"failed",phase:$phase,reason:$r,log:$tail,dmesg:$dmesg}')"
}

bench_target() { # NAME (rdma-target-iser, lio-tcp, rdma-target-iser@A ...)
  CUR=$1
  local base=${1%@*}
  VARIANT=${1#"$base"}
  VARIANT=${VARIANT#@}
  local impl=${base%-*} tr=${base##*-} t0 holders job failed_jobs=0 params dinfo
  IQN="" TARGET_LOG="" TARGET_PID="" REASON="" DISK="" SRP_ID=""
  CUR_TR=$tr
  case $tr in iser) IFACE=iser ;; srp) IFACE=ib_srp ;; *) IFACE=default ;; esac
  case $impl-$tr in rdma-target-iser|rdma-target-tcp|rdma-target-srp|lio-iser|lio-tcp|lio-srp|tgt-iser|tgt-tcp) ;;
    *) REASON="unknown target $1"; target_failed setup; return ;; esac
  [[ -n $VARIANT && $impl != rdma-target ]] && { REASON="only rdma-target has variants (--rt-dir)"; target_failed setup; return; }
  say "===== $CUR$( ((ROUNDS > 1)) && echo " (round $ROUND of $ROUNDS)")"
  if ! holders=$(wait_port_free); then
    REASON="port $PORT still held before setup: $holders"
    target_failed setup
    return
  fi
  t0=$(now)
  local kev0 ce_start
  kev0=$(dmesg_lines)
  ce_start=$(conn_errors)
  if ! "setup_$impl" "$tr"; then
    [[ $impl == lio ]] && dmesg | tail -n 40 >"$W/lio-dmesg.log"
    target_failed setup
    "teardown_$impl"
    return
  fi
  if ! login; then
    [[ $impl == lio ]] && dmesg | tail -n 40 >"$W/lio-dmesg.log"
    target_failed login
    logout
    "teardown_$impl"
    return
  fi
  local setup_s
  setup_s=$(since "$t0")
  if [[ $tr == srp ]]; then params=$(srp_params); else params=$(session_params); fi
  dinfo=$(disk_info)
  PREFILL_S=null PREFILL_MIBPS=null PREFILL_MIB=null
  if [[ $PREFILL == 1 ]] && ! prefill; then
    target_failed prefill
    logout
    "teardown_$impl"
    return
  fi
  if ((WARMUP > 0)); then
    # Not measured: reads and writes of 4 KiB to 128 KiB, so every job's path has run before its window.
    timeout -k 10 $((WARMUP + 60)) fio --name=warmup --filename="/dev/$DISK" --ioengine=libaio --direct=1 --rw=randrw --bsrange=4k-128k \
      --iodepth=8 --size=64M --time_based --runtime="$WARMUP" >/dev/null 2>"$W/fio.err" || say "$CUR: warm-up fio failed: $(tail -n 2 "$W/fio.err" | tr '\n' ' ')"
  fi
  say "$CUR: up in ${setup_s}s on /dev/$DISK$([[ $PREFILL == 1 ]] && echo "; prefill ${PREFILL_MIB} MiB in ${PREFILL_S}s (${PREFILL_MIBPS} MiB/s)")$( ((WARMUP > 0)) && echo "; warmed up ${WARMUP}s")"
  emit "$(jq -nc --arg t "$CUR" --arg iqn "$IQN" --arg iface "$IFACE" --argjson setup "$setup_s" --argjson params "$params" \
    --argjson disk "$dinfo" --argjson ps "$PREFILL_S" --argjson pm "$PREFILL_MIBPS" --argjson pb "$PREFILL_MIB" \
    '{type:"target",target:$t,status:"ok",iqn:$iqn,iface:$iface,setup_s:$setup,negotiated:$params,disk:$disk,prefill_s:$ps,prefill_MiBps:$pm,prefill_MiB:$pb}')"
  for job in $JOBS; do
    REASON=""
    if [[ -n $TARGET_PID ]] && ! kill -0 "$TARGET_PID" 2>/dev/null; then
      REASON="the target process (pid $TARGET_PID) is gone"
    elif ! session_alive; then
      REASON=$([[ $tr == srp ]] && echo "no SRP remote port / disk any more" || echo "no iSCSI session / disk any more")
    fi
    local jrc=1
    if [[ -z $REASON ]]; then
      run_job "$job"
      jrc=$?
      ((jrc == 0)) && continue
    fi
    failed_jobs=$((failed_jobs + 1))
    say "$CUR $job: FAILED: $REASON"
    # jrc 2: fio ran and its result (with the error) is already recorded.
    ((jrc == 2)) || emit "$(jq -nc --arg t "$CUR" --arg j "$job" --arg r "$REASON" '{type:"job",target:$t,job:$j,status:"failed",reason:$r}')"
    if ((failed_jobs == 1)); then
      say "--- ${TARGET_LOG:-no target log} (tail)"; [[ -n $TARGET_LOG ]] && tail -n 60 "$TARGET_LOG"; say "--- dmesg (tail)"; dmesg | tail -n 25; say "---"
      emit "$(jq -nc --arg t "$CUR" --arg j "$job" --argjson tail "$( [[ -n $TARGET_LOG ]] && tail_json "$TARGET_LOG" 80 || echo '""')" \
        --argjson dmesg "$(dmesg_json 30)" --argjson fio "$(tail_json "$W/fio.err" 20)" \
        '{type:"log",target:$t,job:$j,target_log:$tail,dmesg:$dmesg,fio_err:$fio}')"
    fi
  done
  local ce_total logins=null
  ce_total=$(( $(conn_errors) - ce_start ))
  if [[ $impl-$tr == rdma-target-srp ]]; then logins=$(grep -c 'srp: channel up' "$TARGET_LOG")
  elif [[ $impl == rdma-target ]]; then logins=$(grep -cE '^(debug: )?login: ' "$TARGET_LOG"); fi  # info since the structured logs, debug before
  ((ce_total > 0)) && say "$CUR: the initiator saw $ce_total connection error(s) (see dmesg)"
  emit "$(jq -nc --arg t "$CUR" --argjson ce "$ce_total" --argjson logins "$logins" --argjson lines "$(kernel_events "$kev0")" \
    '{type:"kernel_events",target:$t,conn_errors:$ce,target_logins:$logins,dmesg:$lines}')"
  logout
  "teardown_$impl"
  return 0
}

# ------------------------------------------------------------------ the run

T_START=$(now)
read -ra TLIST <<<"$TARGETS"
raw_rdma before
for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
  # Round r starts at the r-th target: each target runs early in one round and late in another.
  n=${#TLIST[@]}
  for ((i = 0; i < n; i++)); do
    bench_target "${TLIST[$(((i + ROUND - 1) % n))]}"
  done
done
ROUND=0
raw_rdma after
if h=$(port_holders) && [[ -n $h ]]; then say "left over at the end: $h"; fi
emit "$(jq -nc --argjson s "$(since "$T_START")" '{type:"done",elapsed_s:$s}')"

echo "BENCH-REPLAY-BEGIN"
while IFS= read -r line; do echo "BENCHR $line"; done <"$RESULTS"
echo "BENCH-REPLAY-END"
exit 0
