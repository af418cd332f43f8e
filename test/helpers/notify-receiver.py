#!/usr/bin/env python3
# A stand-in for systemd's notify socket: binds a unix datagram socket (a path, or "@name" for an
# abstract one), prints "listening", then one JSON line per datagram: {"pid": sender, "fields": {...}}.
# File descriptors that come with a datagram (systemd-notify's BARRIER=1 pipe) are closed at once,
# which is how the manager answers a barrier.
import array, json, os, socket, struct, sys

address = sys.argv[1]
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.bind("\0" + address[1:] if address.startswith("@") else address)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
print("listening", flush=True)
while True:
    data, ancillary, _flags, _addr = sock.recvmsg(65536, socket.CMSG_SPACE(64 * 4) + socket.CMSG_SPACE(12))
    pid = None
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds = array.array("i")
            fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
            for fd in fds:
                os.close(fd)
        elif level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
            pid = struct.unpack("iII", payload[:12])[0]
    fields = dict(line.split("=", 1) for line in data.decode().split("\n") if "=" in line)
    print(json.dumps({"pid": pid, "fields": fields}), flush=True)
