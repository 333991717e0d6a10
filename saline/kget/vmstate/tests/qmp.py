#!/usr/bin/python3
"""qmp.py SOCKET COMMAND...: run QMP commands in order, print each reply.

A COMMAND is a QMP command as JSON, or `wait-migration`: poll
query-migrate until the migration completes (exit 1 if it fails, or after
30 s).
"""
import json
import socket
import sys
import time


def main():
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(sys.argv[1])
    f = sock.makefile('rw')

    def call(cmd):
        f.write(json.dumps(cmd) + '\n')
        f.flush()
        while True:
            r = json.loads(f.readline())
            if 'return' in r:
                return r['return']
            if 'error' in r:
                sys.exit('qmp: %s: %s' % (cmd['execute'], r['error']['desc']))

    json.loads(f.readline())
    call({'execute': 'qmp_capabilities'})
    for arg in sys.argv[2:]:
        if arg != 'wait-migration':
            print(json.dumps(call(json.loads(arg))))
            continue
        deadline = time.monotonic() + 30
        while True:
            r = call({'execute': 'query-migrate'})
            if r.get('status') == 'completed':
                break
            if r.get('status') == 'failed':
                sys.exit('qmp: migration failed: %s' % r.get('error-desc'))
            if time.monotonic() > deadline:
                sys.exit('qmp: migration not done after 30 s: %s' % r)
            time.sleep(0.1)


main()
