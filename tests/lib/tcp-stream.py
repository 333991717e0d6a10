#!/usr/bin/env python3
"""A TCP stream to a guest's agent that checks every line comes back.

    tcp-stream.py HOST PORT DIR [DRAIN_S]

Sends "echo n0000000", "echo n0000001", ... one line every 20 ms on one
connection (TCP_NODELAY, so each line is its own segment, as an
interactive client's would be), whether the answers keep up or not;
vcguest answers each with its text, in order. Every answer must be the
next number: a line lost, repeated or reordered is counted as bad.

DIR/progress holds the number of answers so far (rewritten every 0.1 s).
When DIR/stop appears the client stops sending, waits up to DRAIN_S
seconds (default 10) for the answers still due, closes, and writes
DIR/result.json: sent, echoed, bad, first_bad, max_gap_ms (the largest
time between two answers), max_gap_at (wall-clock time the gap began),
eof (the guest closed first), error. It exits 0 whenever it could write
the report; 1 if it could not connect.
"""

import json
import os
import socket
import sys
import threading
import time

INTERVAL = 0.02


def main():
    host, port, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    drain = float(sys.argv[4]) if len(sys.argv) > 4 else 10.0
    st = {"sent": 0, "echoed": 0, "bad": 0, "first_bad": "",
          "max_gap_ms": 0.0, "max_gap_at": 0.0, "eof": False, "error": ""}
    lock = threading.Lock()
    try:
        s = socket.create_connection((host, port), timeout=10)
    except OSError as e:
        print(f"tcp-stream: cannot connect to {host}:{port}: {e}",
              file=sys.stderr)
        return 1
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.settimeout(None)

    def reader():
        last = None
        f = s.makefile("r", encoding="ascii", errors="replace", newline="\n")
        try:
            for line in f:
                mono, wall = time.monotonic(), time.time()
                with lock:
                    want = "n%07d" % st["echoed"]
                    if line.rstrip("\r\n") != want:
                        st["bad"] += 1
                        if not st["first_bad"]:
                            st["first_bad"] = f"expected {want}, got {line!r}"
                    st["echoed"] += 1
                    if last is not None:
                        gap = (mono - last[0]) * 1000
                        if gap > st["max_gap_ms"]:
                            st["max_gap_ms"] = gap
                            st["max_gap_at"] = last[1]
                last = (mono, wall)
        except OSError as e:
            with lock:
                st["error"] = st["error"] or f"receive: {e}"
        with lock:
            st["eof"] = True

    t = threading.Thread(target=reader, daemon=True)
    t.start()

    def progress():
        tmp = os.path.join(out, "progress.tmp")
        with open(tmp, "w") as f:
            f.write("%d\n" % st["echoed"])
        os.replace(tmp, os.path.join(out, "progress"))

    start = time.monotonic()
    next_progress = 0.0
    stop = os.path.join(out, "stop")
    while not os.path.exists(stop) and not st["eof"]:
        try:
            s.sendall(b"echo n%07d\n" % st["sent"])
        except OSError as e:
            st["error"] = f"send: {e}"
            break
        st["sent"] += 1
        now = time.monotonic()
        if now >= next_progress:
            progress()
            next_progress = now + 0.1
        delay = start + st["sent"] * INTERVAL - time.monotonic()
        if delay > 0:
            time.sleep(delay)

    deadline = time.monotonic() + drain
    while time.monotonic() < deadline and not st["eof"]:
        with lock:
            if st["echoed"] >= st["sent"]:
                break
        time.sleep(0.05)
    try:
        s.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    t.join(timeout=2)
    s.close()
    progress()
    with lock:
        report = dict(st)
    tmp = os.path.join(out, "result.json.tmp")
    with open(tmp, "w") as f:
        json.dump(report, f)
        f.write("\n")
    os.replace(tmp, os.path.join(out, "result.json"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
