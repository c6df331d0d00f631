# Test-only "hosts" for multi-host runs: N network namespaces joined by veth pairs to a
# bridge that lives in its own namespace, addresses 198.18.0.1..N (the benchmarking range,
# confined to these namespaces; nothing is added to the root namespace). OpenMPI reaches
# them through an rsh agent that runs commands with `ip netns exec`.
#   netns_up N [RATE [BURST]]  create hosts (optional tbf rate limit on every host's egress,
#                       e.g. 1gbit, with a token bucket of BURST, default 256kb)
#   netns_down          remove them
#   netns_require WHAT  in a test: skip it (exit 77, the reason printed) without mpirun or namespaces
#   netns_mpirun ARGS   mpirun from host 0 across the hosts (hostfile with 1 slot each)
NETNS_PREFIX=herd$$
NETNS_N=0

netns_available() {
    [ "$(id -u)" = 0 ] || { echo "needs root to create network namespaces"; return 1; }
    ip netns add "${NETNS_PREFIX}probe" 2>/dev/null || { echo "cannot create network namespaces here"; return 1; }
    ip netns del "${NETNS_PREFIX}probe"
    return 0
}

netns_require() {
    local why
    if ! command -v mpirun >/dev/null; then
        why="mpirun not installed (openmpi-bin)"
    elif why=$(netns_available); then
        return 0
    fi
    echo "SKIP: $why; $1 not run"
    echo "0 passed, 0 failed (skipped)"
    exit 77
}

netns_up() {
    local n=$1 rate=${2:-} burst=${3:-256kb} br=${NETNS_PREFIX}br
    NETNS_N=$n
    ip netns add "$br"
    ip -n "$br" link add br0 type bridge
    ip -n "$br" link set br0 up
    ip -n "$br" link set lo up
    : >"$TMP/hostfile"
    for i in $(seq 0 $((n - 1))); do
        local h=${NETNS_PREFIX}h$i
        ip netns add "$h"
        ip link add name "v$i" netns "$br" type veth peer name eth0 netns "$h"
        ip -n "$br" link set "v$i" master br0 up
        ip -n "$h" link set lo up
        ip -n "$h" addr add "198.18.0.$((i + 1))/24" dev eth0
        ip -n "$h" link set eth0 up
        if [ -n "$rate" ]; then
            ip netns exec "$h" tc qdisc add dev eth0 root tbf rate "$rate" burst "$burst" latency 100ms
        fi
        echo "198.18.0.$((i + 1)) slots=1" >>"$TMP/hostfile"
    done
    cat >"$TMP/rsh_agent" <<AGENT
#!/bin/sh
# OpenMPI calls: rsh_agent HOST COMMAND...; HOST 198.18.0.K runs in namespace ${NETNS_PREFIX}h(K-1),
# with its own session directory, as a host has its own /tmp: the daemons of one job share
# the hostname, and 3 of them creating the same /tmp/ompi.HOST.0/jf.N at once failed
# ("unable to create the desired directory ... File exists") in 1 of 3 launches on 4 hosts.
host=\$1; shift
k=\${host##*.}
mkdir -p "$TMP/ompi_h\$k"
exec ip netns exec ${NETNS_PREFIX}h\$((k - 1)) env OMPI_MCA_orte_tmpdir_base="$TMP/ompi_h\$k" /bin/sh -c "\$*"
AGENT
    chmod +x "$TMP/rsh_agent"
}

netns_down() {
    for i in $(seq 0 $((NETNS_N - 1))); do ip netns del "${NETNS_PREFIX}h$i" 2>/dev/null; done
    ip netns del "${NETNS_PREFIX}br" 2>/dev/null
    NETNS_N=0
}

# rtc_hwloc_vmhole none: OpenMPI 4.1's daemon otherwise shares its hwloc topology through a
# memory segment placed in a "hole" of its address space, and under `ip netns exec` it
# segfaulted there (hwloc_shmem_topology_write) in 5 of 40 launches of /bin/true on 3 hosts;
# 0 of 40 with sharing off (ranks then discover the topology themselves instead of adopting it).
# NETNS_LAUNCH: a command to start mpirun with (bench/scaling --predict: "setsid -w", so that
# with the kernel's autogroups the ranks on host 0 get the CPU share of the other hosts' daemons,
# which OpenMPI starts in sessions of their own).
netns_mpirun() {
    ${NETNS_LAUNCH:-} ip netns exec "${NETNS_PREFIX}h0" env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
        mpirun --hostfile "$TMP/hostfile" --mca plm_rsh_agent "$TMP/rsh_agent" \
        --mca oob_tcp_if_include 198.18.0.0/24 --mca btl_tcp_if_include 198.18.0.0/24 --mca btl self,tcp \
        --mca rtc_hwloc_vmhole none --bind-to none "$@"
}
