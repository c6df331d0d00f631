# PostgreSQL sources never hang: a server that accepts and never answers, one that completes
# the handshake and then never answers a statement, and an address that drops every packet
# (a dummy interface in a network namespace) each end in one line naming the source, within
# the bound. No PostgreSQL server is needed: the "servers" are Python listeners.
. "$(dirname "$0")/cli_lib.sh"
printf 'input 4\ndense 3\n' >"$TMP/m.spec"

# listen MODE: starts a listener, its port in $PORT; MODE silent (accept, read, never answer) or handshake
# (answer SSL/GSS requests with N, the startup with AuthenticationOk + ReadyForQuery, then
# read statements and never answer them)
listen() {
    /usr/bin/python3 -u - "$1" >"$TMP/port.$1" <<'PY' &
import socket, struct, sys, threading, time
mode = sys.argv[1]
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(8)
print(s.getsockname()[1])
def serve(c):
    try:
        while mode == "handshake":
            n = struct.unpack("!I", c.recv(4, socket.MSG_WAITALL))[0]
            body = c.recv(n - 4, socket.MSG_WAITALL)
            if n == 8 and struct.unpack("!I", body)[0] in (80877103, 80877104):
                c.sendall(b"N")  # no SSL, no GSS encryption
                continue
            c.sendall(b"R" + struct.pack("!II", 8, 0) + b"Z" + struct.pack("!I", 5) + b"I")
            break
        while c.recv(4096):
            pass  # statements arrive and are never answered
    except OSError:
        pass
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
PY
    LISTENERS="${LISTENERS:-} $!"
    for _ in $(seq 50); do [ -s "$TMP/port.$1" ] && break; sleep 0.1; done
    PORT=$(cat "$TMP/port.$1")
}
trap 'kill $LISTENERS 2>/dev/null; rm -rf "$TMP"' EXIT

# timed EXIT MAX_S DESCRIPTION -- command: the exit code, and at most MAX_S seconds
timed() {
    local want=$1 max=$2 what=$3
    shift 3
    local t0=$SECONDS
    expect_exit "$want" "$what" "$@"
    local took=$((SECONDS - t0))
    [ "$took" -le "$max" ] && pass || fail "$what: took $took s, the bound is $max s"
    echo "$what: exit after $took s"
}

listen silent 2>/dev/null
# no connect_timeout in the URL: herd's default (10 s) applies
timed 1 14 "silent server" -- "$HERD" train "$TMP/m.spec" --epochs 1 \
    --data "postgresql://herd@127.0.0.1:$PORT/db?sslmode=disable&query=SELECT a, label FROM t"
expect_err_line "silent server" "postgresql://herd@127.0.0.1:$PORT/db?sslmode=disable: cannot connect: no answer within the connect_timeout of 10 s"

listen handshake 2>/dev/null
# the URL's statement_timeout (1 s) bounds each statement: the client gives up 5 s after it
timed 1 9 "server that stops answering" -- "$HERD" train "$TMP/m.spec" --epochs 1 \
    --data "postgresql://herd@127.0.0.1:$PORT/db?options=-c%20statement_timeout%3D1000&query=SELECT a, label FROM t"
expect_err_line "server that stops answering" "no reply from the server within 6 s"

if reason=$(. "$(dirname "$0")/netns_hosts.sh" && netns_available); then
    NS=herdpg$$
    ip netns add "$NS" && ip netns add "${NS}b"
    trap 'kill $LISTENERS 2>/dev/null; ip netns del "$NS" 2>/dev/null; ip netns del "${NS}b" 2>/dev/null; rm -rf "$TMP"' EXIT
    # a veth pair into a second namespace; 10.77.0.2 is a neighbour whose MAC nobody has, so
    # every packet to it leaves and is dropped by the other end, unanswered (no ARP, no ICMP)
    ip -n "$NS" link set lo up
    ip -n "$NS" link add eth0 type veth peer name eth0 netns "${NS}b"
    ip -n "$NS" addr add 10.77.0.1/24 dev eth0
    ip -n "$NS" link set eth0 up
    ip -n "${NS}b" link set eth0 up
    ip -n "$NS" neigh add 10.77.0.2 lladdr 02:00:00:00:77:02 dev eth0 nud permanent
    timed 1 6 "dropped packets" -- ip netns exec "$NS" "$HERD" train "$TMP/m.spec" --epochs 1 \
        --data "postgresql://herd@10.77.0.2:5432/db?connect_timeout=2&query=SELECT a, label FROM t"
    expect_err_line "dropped packets" "postgresql://herd@10.77.0.2:5432/db?connect_timeout=2: cannot connect: no answer within the connect_timeout of 2 s"
else
    echo "SKIP (dropped packets only): $reason"
fi
summary
