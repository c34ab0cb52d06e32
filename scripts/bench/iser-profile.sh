#!/bin/bash
# Where rdma-target's time goes over iSER: runs the daemon under `node --cpu-prof` in the
# soft-RoCE VM, drives it with fio through the kernel's ib_iser, and prints self time by
# file and by function (scripts/bench/cpuprofile-summary.mjs). Run from the host:
#
#   bash scripts/vm/run.sh --timeout 600 -- bash scripts/bench/iser-profile.sh
#
# JOBS="rw bs qd,..." (default "randread 4k 32,randwrite 4k 32"), RT seconds per job (10).
set -u
W=/run/iser-profile; mkdir -p $W
IQN=iqn.2025-01.org.rdma-target:profile
cat > $W/config.json <<J
{"targets":[{"iqn":"$IQN","tpgs":[{"tag":1,
 "portals":[{"address":"10.77.0.1","port":3260,"transport":"iser"}],
 "luns":[{"lun":0,"backstore":{"type":"ram","size":"256M"}}],
 "attributes":{"generateNodeAcls":true}}]}],"stateDir":"$W/state","control":false}
J
node --cpu-prof --cpu-prof-dir=$W/prof dist/cli/main.js --config $W/config.json > $W/target.log 2>&1 &
TPID=$!
for _ in $(seq 1 100); do grep -q "^listening on iser" $W/target.log && break; sleep 0.3; done
modprobe ib_iser; modprobe sd_mod
mkdir -p /etc/iscsi; echo "InitiatorName=$IQN-initiator" > /etc/iscsi/initiatorname.iscsi; touch /etc/iscsi/iscsid.conf
pgrep -x iscsid >/dev/null || iscsid
iscsiadm -m node -o new -T $IQN -p 10.77.0.1:3260 -I iser >/dev/null
iscsiadm -m node -T $IQN -p 10.77.0.1:3260 -I iser --login >/dev/null || { cat $W/target.log; exit 1; }
D=
for _ in $(seq 1 50); do
  D=$(iscsiadm -m session -P3 | grep -o "Attached scsi disk sd[a-z]*" | awk '{print $4}' | head -1)
  [[ -n $D && -b /dev/$D ]] && break; sleep 0.2
done
IFS=, read -ra L <<< "${JOBS:-randread 4k 32,randwrite 4k 32}"
for job in "${L[@]}"; do
  set -- $job
  fio --name=j --filename=/dev/$D --direct=1 --ioengine=libaio --rw=$1 --bs=$2 --iodepth=$3 --runtime=${RT:-10} --time_based \
    --ramp_time=1 --output-format=terse --terse-version=3 2>&1 |
    awk -F';' -v j="$job" '{printf "%-18s read %6s IOPS %7.1f MiB/s | write %6s IOPS %7.1f MiB/s\n", j, $8, $7/1024, $49, $48/1024}'
done
iscsiadm -m node -T $IQN -p 10.77.0.1:3260 -I iser --logout >/dev/null
kill -INT $TPID; wait $TPID
node scripts/bench/cpuprofile-summary.mjs $W/prof
