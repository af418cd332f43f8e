#!/usr/bin/python3
# The SPICE client of `qumra bench spice`: spice-gtk's own protocol and decoders (SpiceClientGLib, the
# library behind remote-viewer), without a window. Run with Debian's /usr/bin/python3 (python3-gi and
# gir1.2-spiceclientglib-2.0). Prints one JSON object per line on stdout.
#
#   first HOST PORT RUNS [PASSWORD]  RUNS sessions one after another: connect, wait until the invalidated
#                                    rects cover the whole primary surface (every pixel decoded and drawn
#                                    into spice-gtk's canvas), disconnect. One {"event":"first","ms":...}
#                                    per run, timed from Session.connect() (interpreter and library start-up
#                                    are not counted).
#   watch HOST PORT [PASSWORD]       one session that stays connected: {"event":"ready",...} once the
#                                    first screen is complete, then decodes everything the server sends
#                                    (and acks it, so the server's flow control sees a live client) until
#                                    stdin closes; then {"event":"done",...}.
#
# A main-channel error (wrong ticket, refused link) prints {"event":"error",...} and exits 1.
# Under PyGObject, Session.connect()/Channel.connect() mean "connect to the server": signals are
# attached with GObject.Object.connect.
import json
import os
import sys
import time

import gi

gi.require_version("SpiceClientGLib", "2.0")
from gi.repository import GLib, GObject, SpiceClientGLib  # noqa: E402

TIMEOUT_S = 30


def emit(**fields):
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


class Coverage:
    """Which pixels of the primary surface have been drawn since it was created (exact, one byte a pixel)."""

    def __init__(self, width, height):
        self.width, self.height = width, height
        self.cells = bytearray(width * height)
        self.area = 0

    def add(self, x, y, w, h):
        x0, y0 = max(0, x), max(0, y)
        x1, y1 = min(self.width, x + w), min(self.height, y + h)
        if x1 <= x0 or y1 <= y0:
            return
        row = b"\x01" * (x1 - x0)
        for r in range(y0, y1):
            start = r * self.width + x0
            self.cells[start:start + (x1 - x0)] = row
        self.area += (x1 - x0) * (y1 - y0)

    def complete(self):
        # the summed area is a cheap necessary condition; the byte scan is the exact one
        return self.area >= self.width * self.height and self.cells.find(0) < 0


class Session:
    """One connection: calls on_first(ms, width, height) when the first screen is complete."""

    def __init__(self, host, port, password, on_first, on_error):
        self.on_first, self.on_error = on_first, on_error
        self.coverage = None
        self.first_done = False
        self.invalidates = 0
        self.session = SpiceClientGLib.Session()
        self.session.set_property("host", host)
        self.session.set_property("port", str(port))
        if password:
            self.session.set_property("password", password)
        GObject.Object.connect(self.session, "channel-new", self.channel_new)
        self.started = time.monotonic()
        self.session.connect()

    def channel_new(self, _session, channel):
        if isinstance(channel, SpiceClientGLib.MainChannel):
            GObject.Object.connect(channel, "channel-event", self.main_event)
        elif isinstance(channel, SpiceClientGLib.DisplayChannel):
            GObject.Object.connect(channel, "display-primary-create", self.primary_create)
            GObject.Object.connect(channel, "display-invalidate", self.invalidate)
            channel.connect()

    def main_event(self, channel, event):
        if event in (SpiceClientGLib.ChannelEvent.ERROR_CONNECT, SpiceClientGLib.ChannelEvent.ERROR_TLS,
                     SpiceClientGLib.ChannelEvent.ERROR_LINK, SpiceClientGLib.ChannelEvent.ERROR_AUTH,
                     SpiceClientGLib.ChannelEvent.ERROR_IO):
            error = channel.get_error()
            self.on_error(f"main channel: {event.value_nick}" + (f": {error.message}" if error else ""))

    def primary_create(self, _channel, _format, width, height, _stride, _shmid, _data):
        self.coverage = Coverage(width, height)

    def invalidate(self, _channel, x, y, w, h):
        self.invalidates += 1
        if self.first_done or self.coverage is None:
            return
        self.coverage.add(x, y, w, h)
        if self.coverage.complete():
            self.first_done = True
            self.on_first((time.monotonic() - self.started) * 1000, self.coverage.width, self.coverage.height)

    def close(self):
        self.session.disconnect()


def main(argv):
    mode, host, port = argv[1], argv[2], int(argv[3])
    loop = GLib.MainLoop()
    status = {"code": 0}

    def fail(message):
        emit(event="error", message=message)
        status["code"] = 1
        loop.quit()

    def timeout():
        fail(f"no complete screen within {TIMEOUT_S} s")
        return False

    if mode == "first":
        runs = int(argv[4])
        password = argv[5] if len(argv) > 5 else None
        state = {"run": 0, "session": None, "timer": 0}

        def start():
            state["timer"] = GLib.timeout_add_seconds(TIMEOUT_S, timeout)
            state["session"] = Session(host, port, password, first, fail)
            return False

        def first(ms, width, height):
            GLib.source_remove(state["timer"])
            emit(event="first", run=state["run"], ms=round(ms, 3), width=width, height=height)
            state["session"].close()
            state["run"] += 1
            if state["run"] >= runs:
                loop.quit()
            else:
                GLib.idle_add(start)

        start()
    elif mode == "watch":
        password = argv[4] if len(argv) > 4 else None
        timer = GLib.timeout_add_seconds(TIMEOUT_S, timeout)

        def ready(ms, width, height):
            GLib.source_remove(timer)
            emit(event="ready", ms=round(ms, 3), width=width, height=height, monotonic_ms=time.monotonic() * 1000)

        session = Session(host, port, password, ready, fail)

        def stdin_closed(_fd, _condition):
            emit(event="done", invalidates=session.invalidates)
            session.close()
            loop.quit()
            return False

        GLib.io_add_watch(sys.stdin.fileno(), GLib.IO_IN | GLib.IO_HUP, stdin_closed)
    else:
        emit(event="error", message=f"unknown mode {mode}")
        return 2
    loop.run()
    return status["code"]


if __name__ == "__main__":
    sys.exit(main(sys.argv))
