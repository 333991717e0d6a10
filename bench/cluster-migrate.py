#!/usr/bin/env python3
"""Migrate several QEMU guests at once and time them from both ends.

    cluster-migrate.py [--timeout S] SRC_QMP,DST_QMP,URI ...

For bench/migration-bench.sh (not a test). Connects to the QMP socket of
every source and destination, turns the `events` capability on at both
ends (the only way a destination started with -S says when it has loaded
everything), issues every `migrate` back to back, then waits until each
destination reports MIGRATION completed, or a source fails, or the
timeout passes (then the sources still migrating are cancelled).

A source's own "completed" means its last bytes are in its socket, not
at the destination; over a slow link that is seconds early. So the
times that matter are read from the destination's events: done = its
MIGRATION completed, and the downtime the guest sees = from the source's
STOP to that. Event timestamps are QEMU's wall clock, the same on both
ends here.

Prints one JSON object: {"t0": wall clock s, "guests": [{"src", "status",
"issued", "src_stop", "src_done", "dst_done" (s since t0, null if not
seen), "info": the source's last query-migrate reply, "last_active": its
last reply before it stopped the guest}]}. Progress goes
to stderr every 5 s.
"""

import argparse
import json
import select
import socket
import sys
import time


class Qmp:
    """One QMP connection; events are kept with QEMU's timestamps."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(30)
        self.sock.connect(path)
        self.buf = b""
        self.events = []
        self.read()  # greeting
        self.cmd("qmp_capabilities")

    def fileno(self):
        return self.sock.fileno()

    def read(self):
        while b"\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError(f"QMP '{self.path}' closed")
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def pump(self):
        """Read what has arrived (the socket is readable) into events."""
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError(f"QMP '{self.path}' closed")
        self.buf += data
        self._drain()

    def _drain(self):
        # Between commands only events arrive.
        while b"\n" in self.buf:
            line, self.buf = self.buf.split(b"\n", 1)
            self.events.append(json.loads(line))

    def cmd(self, name, **args):
        req = {"execute": name}
        if args:
            req["arguments"] = args
        self.sock.sendall(json.dumps(req).encode() + b"\n")
        while True:
            msg = self.read()
            if "event" in msg:
                self.events.append(msg)
            elif "error" in msg:
                raise RuntimeError(f"{name} on '{self.path}': "
                                   f"{msg['error'].get('desc')}")
            elif "return" in msg:
                self._drain()
                return msg["return"]

    def event_time(self, name, status=None):
        """Timestamp (s) of the first event NAME [with data.status]."""
        for e in self.events:
            if e["event"] != name:
                continue
            if status is not None and e.get("data", {}).get("status") != status:
                continue
            ts = e["timestamp"]
            return ts["seconds"] + ts["microseconds"] / 1e6
        return None


def since(t0, t):
    return None if t is None else round(t - t0, 4)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--timeout", type=float, default=900)
    ap.add_argument("guests", nargs="+", metavar="SRC_QMP,DST_QMP,URI")
    a = ap.parse_args()

    guests = []
    for spec in a.guests:
        parts = spec.split(",", 2)
        if len(parts) != 3:
            ap.error(f"bad guest '{spec}': expected SRC_QMP,DST_QMP,URI")
        src, dst = Qmp(parts[0]), Qmp(parts[1])
        for q in (src, dst):
            q.cmd("migrate-set-capabilities",
                  capabilities=[{"capability": "events", "state": True}])
        guests.append({"src": src, "dst": dst, "uri": parts[2],
                       "status": "active", "info": {}})

    t0 = time.time()
    for g in guests:
        g["issued"] = time.time() - t0
        g["src"].cmd("migrate", uri=g["uri"])

    deadline = t0 + a.timeout
    next_poll = next_progress = time.time()
    while any(g["status"] == "active" for g in guests):
        now = time.time()
        if now >= deadline:
            for g in guests:
                if g["status"] == "active":
                    g["src"].cmd("migrate_cancel")
                    g["status"] = "timeout"
            break
        socks = [q for g in guests for q in (g["src"], g["dst"])]
        ready, _, _ = select.select(socks, [], [], 0.05)
        for q in ready:
            q.pump()
        if now >= next_poll:
            next_poll = now + 0.5
            for g in guests:
                if g["status"] != "active":
                    continue
                g["info"] = g["src"].cmd("query-migrate")
                if g["info"].get("status") == "active":
                    g["last_active"] = g["info"]
                if g["info"].get("status") in ("failed", "cancelled"):
                    g["status"] = g["info"]["status"]
        for g in guests:
            if g["status"] == "active" and \
                    g["dst"].event_time("MIGRATION", "completed"):
                g["status"] = "completed"
            elif g["status"] == "active" and \
                    g["dst"].event_time("MIGRATION", "failed"):
                g["status"] = "failed"
        if now >= next_progress:
            next_progress = now + 5
            line = " ".join(
                f"{g['status'][:4]}:"
                f"{g['info'].get('ram', {}).get('transferred', 0) >> 20}M"
                for g in guests)
            print(f"  {now - t0:6.1f} s  {line}", file=sys.stderr)

    out = []
    for g in guests:
        # The source settles on "completed" right after the destination
        # (or before it); its final reply has the totals.
        end = time.time() + 10
        while True:
            g["info"] = g["src"].cmd("query-migrate")
            if g["info"].get("status") != "active" or time.time() > end:
                break
            time.sleep(0.1)
        out.append({
            "src": g["src"].path,
            "status": g["status"],
            "issued": round(g["issued"], 4),
            "src_stop": since(t0, g["src"].event_time("STOP")),
            "src_done": since(t0, g["src"].event_time("MIGRATION", "completed")),
            "dst_done": since(t0, g["dst"].event_time("MIGRATION", "completed")),
            "info": g["info"],
            "last_active": g.get("last_active", {}),
        })
    json.dump({"t0": t0, "guests": out}, sys.stdout)
    print()
    return 0 if all(g["status"] == "completed" for g in guests) else 1


if __name__ == "__main__":
    sys.exit(main())
