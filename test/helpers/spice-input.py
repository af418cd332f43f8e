# Drives a SPICE server's inputs channel with spice-gtk's own client library (SpiceClientGLib), as
# remote-viewer would: links the session, then sends the events named on the command line and exits 0.
#   spice-input.py HOST PORT TICKET key:0x1e position:100,50,0 press:1 release:1 ...
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


def run(channel):
    for action in actions:
        kind, _, arg = action.partition(":")
        if kind == "key":
            code = int(arg, 16)
            channel.key_press(code)
            channel.key_release(code)
        elif kind == "position":
            x, y, buttons = (int(v) for v in arg.split(","))
            channel.position(x, y, 0, buttons)
        elif kind == "press":
            channel.button_press(int(arg), 0)
        elif kind == "release":
            channel.button_release(int(arg), 0)
    result["code"] = 0
    # Give the library time to flush its messages before the process exits.
    GLib.timeout_add(500, loop.quit)


def on_event(channel, event):
    if event == Spice.ChannelEvent.OPENED:
        GLib.timeout_add(100, lambda: run(channel) and False)
    elif event in (Spice.ChannelEvent.ERROR_AUTH, Spice.ChannelEvent.ERROR_CONNECT, Spice.ChannelEvent.ERROR_LINK):
        result["code"] = 1
        loop.quit()


def on_channel(_session, channel):
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
