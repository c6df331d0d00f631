# herd under Slurm, for real: a one-node cluster from Debian's slurmctld and slurmd (configuration,
# state and logs in a temporary directory, auth/none, the daemons started and stopped here) runs
# `srun -n 2 --mpi=pmix`, `salloc` + `mpirun` and `sbatch` of a script calling srun: each trains
# one model on 2 ranks and prints the test accuracy once; `srun -n 2` with Slurm's default
# --mpi=none is one line per task saying how to run it, never 2 silent one-rank trainings.
# Skipped (exit 77, with the reason) without the packages, as non-root, or when the daemons do
# not come up.
. "$(dirname "$0")/cli_lib.sh"
require_mpi "Slurm tests"
skip() { echo "SKIP: $1"; echo "0 passed, 0 failed (skipped)"; exit 77; }
for b in slurmctld slurmd srun salloc sbatch squeue; do command -v $b >/dev/null || skip "$b not installed (slurmctld, slurmd, slurm-client)"; done
[ "$(id -u)" = 0 ] || skip "the test cluster's daemons run as root"
ports=$(/usr/bin/python3 -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(" ".join(str(x.getsockname()[1]) for x in s))')
read -r pctld pd <<<"$ports"
S=$TMP/slurm
mkdir -p "$S/state" "$S/spool"
H=$(hostname -s)
cat >"$S/slurm.conf" <<CONF
ClusterName=herdtest
SlurmctldHost=$H
AuthType=auth/none
CredType=cred/none
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$pctld
SlurmdPort=$pd
StateSaveLocation=$S/state
SlurmdSpoolDir=$S/spool
SlurmctldPidFile=$S/ctld.pid
SlurmdPidFile=$S/d.pid
SlurmctldLogFile=$S/ctld.log
SlurmdLogFile=$S/d.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
MpiDefault=none
NodeName=$H CPUs=$(nproc) State=UNKNOWN
PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF=$S/slurm.conf
slurmctld -D >"$S/ctld.out" 2>&1 &
ctld=$!
slurmd -D >"$S/d.out" 2>&1 &
sd=$!
trap 'kill $ctld $sd 2>/dev/null; wait $ctld $sd 2>/dev/null; rm -rf "$TMP"' EXIT
up=0
for _ in $(seq 1 40); do
    sinfo -h -o %T 2>/dev/null | grep -q idle && { up=1; break; }
    sleep 0.5
done
[ $up = 1 ] || skip "the test cluster did not come up: $(tail -c 300 "$S/ctld.log" "$S/d.log" 2>/dev/null)"

make_subset "$TMP/d" 640 200
RUN=(train "$SRC/tests/data/small_cnn_nodrop.spec" --data "$TMP/d" --epochs 1 --batch 64 --seed 5)
two_ranks() { # one training on 2 ranks (1 thread each on this host's cores), its result printed once
    grep -q "2 ranks x 1 thread" "$1" && [ "$(grep -c '^test accuracy: 0\.[0-9]*' "$1")" = 1 ]
}
expect_exit 0 "srun -n 2 --mpi=pmix" -- timeout 300 srun -n 2 --mpi=pmix "$HERD" "${RUN[@]}"
two_ranks "$TMP/out" && pass || fail "srun --mpi=pmix: $(head -c 600 "$TMP/out")"
grep -q $'\r' "$TMP/out" && fail "srun: carriage returns in the progress output" || pass

expect_exit 1 "srun -n 2 (--mpi=none)" -- timeout 120 srun -n 2 "$HERD" "${RUN[@]}"
[ "$(grep -c "herd: srun started 2 tasks, but they cannot reach each other through MPI" "$TMP/err")" = 2 ] &&
    ! grep -q "test accuracy" "$TMP/out" && pass || fail "srun --mpi=none: $(head -c 600 "$TMP/err")"

expect_exit 0 "salloc + mpirun" -- timeout 300 salloc -n 2 mpirun -np 2 "$HERD" "${RUN[@]}"
two_ranks "$TMP/out" && pass || fail "salloc + mpirun: $(head -c 600 "$TMP/out")"

printf '#!/bin/bash\nsrun --mpi=pmix %q' "$HERD" >"$TMP/job.sh"
printf ' %q' "${RUN[@]}" >>"$TMP/job.sh"
printf '\n' >>"$TMP/job.sh"
job=$(sbatch --parsable -n 2 -o "$TMP/job.out" -e "$TMP/job.err" "$TMP/job.sh" 2>"$TMP/err")
[ -n "$job" ] && pass || fail "sbatch: $(cat "$TMP/err")"
for _ in $(seq 1 600); do
    [ -n "$job" ] && squeue -h -j "$job" 2>/dev/null | grep -q . || break
    sleep 0.5
done
two_ranks "$TMP/job.out" && pass || fail "sbatch: $(head -c 400 "$TMP/job.out" "$TMP/job.err" 2>/dev/null)"
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
