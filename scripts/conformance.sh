#!/usr/bin/env bash
# libiscsi's iscsi-test-cu against this target on 127.0.0.1, one family per call, the way
# docs/interop.md measured LIO and tgt. Starts the daemon itself (a random free port,
# three RAM LUNs), writes one log per family and a table under OUT, stops the daemon with
# SIGTERM and checks that it exits 0.
#
#   scripts/conformance.sh [--out DIR] [--families "Read10 Write10 ..."] [--timeout S]
#                          [--transport tcp|iser] [--address ADDR]
#
# --transport iser runs libiscsi's iser:// client against an iSER portal on ADDR:3260
# (default 10.77.0.1, the soft-RoCE VM's rxe0: run it inside scripts/vm/run.sh). The client
# is fragile (docs/rxe-vm.md): its crashes are recorded as X, not as our failures.
# It declares immediate data it does not send (the SEND holds the BHS only), so the TPG
# offers ImmediateData=No and InitialR2T=Yes, what LIO and tgt negotiated when they were
# measured (ISER_IMMEDIATE_DATA=Yes / ISER_INITIAL_R2T=No to see the difference).
#
# LUNs: 0 = 512 MiB RAM, fully provisioned (as the peers were measured);
#       1 = 512 MiB RAM, thin (Unmap, GetLBAStatus, WriteSame, Inquiry.BlockLimits and
#           CompareAndWrite.InvalidDataOutSize run only on a thin LU);
#       2 = 64 MiB RAM, read-only (the ReadOnly family).
# Results: OUT/results.tsv (family, test, P|F|S|X), OUT/summary.tsv (family, P, F, S, X),
# OUT/<family>.log, OUT/daemon.log. P/F/S: passed/failed/skipped, a skip being a CUnit
# "passed" whose output says [SKIPPED]; X: no result (the client crashed or timed out).
# Exit: 0 when every family ran (failures are data, not errors), 1 when the setup or the
# daemon itself failed.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

out="$root/.cache/conformance"
families=""
per_family_timeout=180
transport=tcp
address=10.77.0.1
while (($#)); do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --families) families=$2; shift 2 ;;
    --timeout) per_family_timeout=$2; shift 2 ;;
    --transport) transport=$2; shift 2 ;;
    --address) address=$2; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "conformance: unknown argument $1" >&2; exit 2 ;;
  esac
done

# --- the initiator -------------------------------------------------------------------
if ! command -v iscsi-test-cu >/dev/null; then
  echo "conformance: iscsi-test-cu missing; installing libiscsi-bin" >&2
  sudo=""; [[ $(id -u) != 0 ]] && sudo="sudo -n"
  export DEBIAN_FRONTEND=noninteractive
  if ! $sudo apt-get install -y -q libiscsi-bin >/dev/null 2>&1; then
    $sudo apt-get update -q >/dev/null 2>&1
    $sudo apt-get install -y -q libiscsi-bin >/dev/null 2>&1 ||
      { echo "conformance: cannot install libiscsi-bin (need root or sudo)" >&2; exit 1; }
  fi
fi

# --- the target ----------------------------------------------------------------------
node scripts/bootstrap.mjs >/dev/null || { echo "conformance: build failed" >&2; exit 1; }

mkdir -p "$out"
rm -f "$out"/*.log "$out"/*.tsv
iqn=iqn.2025-01.org.rdma-target:conformance
init1=iqn.2025-01.org.rdma-target:conformance-initiator-1
init2=iqn.2025-01.org.rdma-target:conformance-initiator-2
work=$(mktemp -d)
cfg="$work/conformance.json"
cat >"$cfg" <<EOF
{
  "control": { "socket": "$work/control.sock" },
  "stateDir": "$work/state",
  "backstores": [
    { "name": "thick", "type": "ram", "size": "512M" },
    { "name": "thin", "type": "ram", "size": "512M", "thin": true },
    { "name": "ro", "type": "ram", "size": "64M", "readOnly": true }
  ],
  "targets": [{
    "iqn": "$iqn",
    "tpgs": [{
      "tag": 1,
      $([[ $transport == iser ]] && echo "\"portals\": [{ \"address\": \"$address\", \"port\": 3260, \"transport\": \"iser\" }, { \"address\": \"$address\", \"port\": 3260, \"transport\": \"tcp\" }], \"parameters\": { \"ImmediateData\": \"${ISER_IMMEDIATE_DATA:-No}\", \"InitialR2T\": \"${ISER_INITIAL_R2T:-Yes}\" },")
      "luns": [ { "lun": 0, "backstore": "thick" }, { "lun": 1, "backstore": "thin" }, { "lun": 2, "backstore": "ro" } ],
      "attributes": { "generateNodeAcls": true, "demoModeWriteProtect": false }
    }]
  }]
}
EOF

if [[ $transport == iser ]]; then
  node dist/cli/main.js --log-format human --config "$cfg" >"$out/daemon.log" 2>&1 &
else
  node dist/cli/main.js --log-format human --config "$cfg" --listen 127.0.0.1:0 >"$out/daemon.log" 2>&1 &
fi
daemon=$!
cleanup() {
  kill "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
port=""
for _ in $(seq 1 100); do
  if [[ $transport == iser ]]; then
    grep -q "^listening on iser $address:3260" "$out/daemon.log" && port=3260
  else
    port=$(sed -n 's/^listening on tcp 127\.0\.0\.1:\([0-9]*\) .*/\1/p' "$out/daemon.log" | head -1)
  fi
  [[ -n $port ]] && break
  kill -0 "$daemon" 2>/dev/null || break
  sleep 0.1
done
if [[ -z $port ]]; then
  echo "conformance: the daemon did not start:" >&2
  cat "$out/daemon.log" >&2
  exit 1
fi
host=127.0.0.1; [[ $transport == iser ]] && host=$address
echo "conformance: target $iqn on $transport $host:$port (pid $daemon), results in $out" >&2

# --- the families --------------------------------------------------------------------
if [[ -z $families ]]; then
  families=$(iscsi-test-cu -l | awk -F. 'NF==2 && $1=="ALL" {print $2}')
fi
scheme=iscsi; [[ $transport == iser ]] && scheme=iser
url() { echo "$scheme://$host:$port/$iqn/$1"; }
lun_for() {
  case "$1" in
    # Each of these has tests that run only on a thin-provisioned LU (LBPME=1).
    Unmap|GetLBAStatus|WriteSame10|WriteSame16|Inquiry|CompareAndWrite) echo 1 ;;
    ReadOnly) echo 2 ;;
    *) echo 0 ;;
  esac
}

printf 'family\ttest\tresult\n' >"$out/results.tsv"
printf 'family\tP\tF\tS\tX\trc\n' >"$out/summary.tsv"
for fam in $families; do
  lun=$(lun_for "$fam")
  args=(-d -t "ALL.$fam" -i "$init1" -I "$init2" "$(url "$lun")")
  # MultipathIO needs a second path to the same LU: a second session to the same portal is one.
  [[ $fam == MultipathIO ]] && args+=("$(url "$lun")")
  echo "iscsi-test-cu ${args[*]}" >"$out/$fam.log"
  timeout --signal=KILL "$per_family_timeout" iscsi-test-cu "${args[@]}" >>"$out/$fam.log" 2>&1
  rc=$?
  expected=$(iscsi-test-cu -l | awk -F. -v f="$fam" 'NF==3 && $1=="ALL" && $2==f {print $3}')
  # CUnit verbose output: "  Test: NAME ..." then the test's own log lines (where
  # "[SKIPPED] ..." appears), then the verdict "passed" or "FAILED", either straight after
  # the "..." or at the start of a line. Log lines after a verdict (the PR probe's
  # "[SKIPPED] PERSISTENT RESERVE IN..." is printed again at exit) belong to no test.
  awk -v fam="$fam" -v expected="$expected" '
    BEGIN { n = split(expected, names, "\n"); for (i = 1; i <= n; i++) res[names[i]] = "X" }
    {
      line = $0
      if (match(line, /^  Test: [^ ]+ \.\.\./)) {
        cur = substr(line, 9, RLENGTH - 12); skipped = 0
        line = substr(line, RLENGTH + 1)
      }
      if (cur == "") next
      if (line ~ /^passed/) { res[cur] = skipped ? "S" : "P"; cur = "" }
      else if (line ~ /^FAILED/) { res[cur] = "F"; cur = "" }
      else if (line ~ /\[SKIPPED\]/) skipped = 1
    }
    END { for (i = 1; i <= n; i++) printf "%s\t%s\t%s\n", fam, names[i], res[names[i]] }
  ' "$out/$fam.log" >>"$out/results.tsv"
  read -r p f s x < <(awk -F'\t' -v fam="$fam" '$1==fam {c[$3]++} END {printf "%d %d %d %d\n", c["P"], c["F"], c["S"], c["X"]}' "$out/results.tsv")
  printf '%s\t%d\t%d\t%d\t%d\t%d\n' "$fam" "$p" "$f" "$s" "$x" "$rc" >>"$out/summary.tsv"
  printf '%-24s P %-3d F %-3d S %-3d X %-3d%s\n' "$fam" "$p" "$f" "$s" "$x" "$( ((rc > 1)) && echo " (iscsi-test-cu exit $rc)")" >&2
  if ! kill -0 "$daemon" 2>/dev/null; then
    echo "conformance: the daemon died during $fam:" >&2
    tail -30 "$out/daemon.log" >&2
    exit 1
  fi
done

[[ $transport == iser ]] && { echo "--- daemon log (tail) ---" >&2; grep -v '^debug' "$out/daemon.log" | tail -25 >&2; }
awk -F'\t' 'NR>1 {t++; c[$3]++} END {printf "TOTAL tests %d: P %d F %d S %d X %d\n", t, c["P"], c["F"], c["S"], c["X"]}' "$out/results.tsv" | tee "$out/total.txt" >&2
awk -F'\t' 'NR>1 && $3=="F" {print "FAILED  ALL." $1 "." $2} NR>1 && $3=="X" {print "NO RESULT  ALL." $1 "." $2}' "$out/results.tsv" >&2

# --- a clean stop --------------------------------------------------------------------
kill -TERM "$daemon"
wait "$daemon"
drc=$?
trap - EXIT
rm -rf "$work"
echo "daemon exit status after SIGTERM: $drc" | tee -a "$out/total.txt" >&2
((drc == 0)) || exit 1
exit 0
