# Drives a SPICE server's inputs channel with spice-gtk's own client library (SpiceClientGLib), as
# remote-viewer would: links the session, then sends the events named on the command line and exits 0.
#   spice-input.py HOST PORT TICKET key:0x1e position:100,50,0 press:1,1 release:1,0 mode:1 sleep:300 motion:5,-3,0
# (press/release: spice button, then the buttons state after the event; mode: 1 server, 2 client mouse mode)
import sys

import gi

gi.require_version("SpiceClientGLib", "2.0")
from gi.repository import GLib, GObject  # noqa: E402
from gi.repository import SpiceClientGLib as Spice  # noqa: E402

host, port, ticket, *actions = sys.argv[1:]
session = Spice.Session()
session.set_property("host", host)
session.set_property("port", port)
session.set_property("password", ticket)
loop = GLib.MainLoop()
result = {"code": 3}
channels = {}


def run(channel):
    """Sends the actions one per main-loop turn, so a mode request travels before the motions after it."""
    pending = list(actions)

    def step():
        if not pending:
            result["code"] = 0
            # Give the library time to flush its messages before the process exits.
            GLib.timeout_add(500, loop.quit)
            return False
        kind, _, arg = pending.pop(0).partition(":")
        values = [int(v, 0) for v in arg.split(",")] if arg else []
        if kind == "key":
            channel.key_press(values[0])
            channel.key_release(values[0])
        elif kind == "position":
            channel.position(values[0], values[1], 0, values[2])
        elif kind == "motion":
            channel.motion(values[0], values[1], values[2])
        elif kind == "press":
            channel.button_press(values[0], values[1] if len(values) > 1 else 0)
        elif kind == "release":
            channel.button_release(values[0], values[1] if len(values) > 1 else 0)
        elif kind == "mode":
            channels["main"].request_mouse_mode(values[0])
        elif kind == "sleep":
            GLib.timeout_add(values[0], step)
            return False
        return True

    GLib.timeout_add(20, step)


def on_event(channel, event):
    if event == Spice.ChannelEvent.OPENED:
        GLib.timeout_add(100, lambda: run(channel) and False)
    elif event in (Spice.ChannelEvent.ERROR_AUTH, Spice.ChannelEvent.ERROR_CONNECT, Spice.ChannelEvent.ERROR_LINK):
        result["code"] = 1
        loop.quit()


def on_channel(_session, channel):
    if isinstance(channel, Spice.MainChannel):
        channels["main"] = channel
    if isinstance(channel, (Spice.InputsChannel, Spice.MainChannel)):
        GObject.Object.connect(channel, "channel-event", on_event if isinstance(channel, Spice.InputsChannel) else on_main_event)
    if isinstance(channel, Spice.InputsChannel):
        Spice.Channel.connect(channel)


def on_main_event(_channel, event):
    if event in (Spice.ChannelEvent.ERROR_AUTH, Spice.ChannelEvent.ERROR_CONNECT, Spice.ChannelEvent.ERROR_LINK):
        result["code"] = 1
        loop.quit()


GObject.Object.connect(session, "channel-new", on_channel)
if not session.connect():
    sys.exit(2)
GLib.timeout_add(15000, loop.quit)
loop.run()
session.disconnect()
sys.exit(result["code"])
