#!/usr/bin/env python3
"""Checks the man pages against the programs they describe (TAP output).

  check-man-pages.py --man-dir DIR [--config PAGE=SOURCE]... NAME=EXE...

For each program NAME, runs EXE --help (and EXE COMMAND --help for the
commands of PROGRAMS below) and compares the options it lists with the
option tags (.TP items starting with '-') of man page NAME.N: those of
the OPTIONS section for the program itself, those of the COMMANDS
subsection ".SS COMMAND ..." for a command. Both ways: an option missing
from the page fails, and so does an option the program does not list.
A tag is compared whole, as --help prints it: "-c, --config=FILE".

Each --config PAGE=SOURCE compares the [group] key= items of PAGE (.TP
tags under a ".SS [group]" title) with the VcConfigKey schema in SOURCE,
both ways, and checks that each key's compiled-in default is in its
item's text.

Every page of DIR must render with groff -ww without a warning.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys

# NAME: (section, commands with a --help of their own, help format).
# 'glib': GOptionContext's help, options in "... Options:" sections.
# 'commands': a list of "  COMMAND [-o ARG]...  description" lines, the
# options in each command's synopsis (ssi).
PROGRAMS = {
    'dht-pagesd': ('8', [], 'glib'),
    'dht-pages': ('1', [], 'glib'),
    'vm-migrate': ('1', [], 'glib'),
    'salined': ('8', [], 'glib'),
    'saline': ('1', ['submit', 'stat', 'del', 'suspend', 'resume', 'nodes',
                     'log'], 'glib'),
    'saline-oarjob': ('8', [], 'glib'),
    'kget': ('1', [], 'glib'),
    'kget-store': ('8', [], 'glib'),
    'salguest': ('8', [], 'glib'),
    'ssid': ('8', [], 'glib'),
    'ssi': ('1', None, 'commands'),
}
# Pages that describe no program's options.
OTHER_PAGES = {'salined.conf.5'}

HELP_TAG = '-h, --help'
OPTION_LINE = re.compile(r'^\s+(-[^\s,]*(?:, -\S+)?)(?:\s{2,}|$)')
SYNOPSIS_OPTION = re.compile(r'(?<![\w=-])(-{1,2}[A-Za-z][\w-]*)'
                             r'(?: ([A-Z][A-Z_]*))?')


def run_help(exe, args):
    env = dict(os.environ, LC_ALL='C')
    p = subprocess.run([exe] + args + ['--help'], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, env=env, timeout=30,
                       universal_newlines=True)
    if p.returncode != 0:
        raise RuntimeError('%s %s --help: exit %d: %s' %
                           (exe, ' '.join(args), p.returncode,
                            p.stderr.strip()))
    return p.stdout


def glib_options(text):
    """The option tags of a GOptionContext help, '-h, --help' included."""
    tags = set()
    in_options = False
    for line in text.splitlines():
        if re.match(r'^\S.*Options:$', line):
            in_options = True
        elif line and not line[0].isspace():
            in_options = False
        elif in_options:
            m = OPTION_LINE.match(line)
            if m:
                tags.add(m.group(1))
    return tags


def command_options(text):
    """{command: option tags} of a 'commands' help: '-n NODE', '--json'."""
    commands = {}
    for line in text.splitlines():
        m = re.match(r'^  ([a-z][\w-]*)(.*)$', line)
        if not m:
            continue
        synopsis = re.split(r'\s{2,}', m.group(2).strip())[0]
        tags = commands.setdefault(m.group(1), set())
        for o in SYNOPSIS_OPTION.finditer(synopsis):
            tags.add(o.group(1) + (' ' + o.group(2) if o.group(2) else ''))
    return commands


def roff_args(text):
    args, cur, quoted, started = [], '', False, False
    for c in text:
        if c == '"':
            quoted = not quoted
            started = True
        elif c in ' \t' and not quoted:
            if started:
                args.append(cur)
            cur, started = '', False
        else:
            cur += c
            started = True
    if started:
        args.append(cur)
    return args


def roff_text(line):
    """The text of one roff line, fonts and macros gone."""
    m = re.match(r'^\.([A-Z]{1,2})\s*(.*)$', line)
    if m:
        args = roff_args(m.group(2))
        alternating = m.group(1) in ('BR', 'BI', 'IB', 'IR', 'RB', 'RI')
        joiner = '' if alternating else ' '
        line = joiner.join(args)
    line = re.sub(r'\\f(\[[^]]*\]|\(..|.)', '', line)
    line = line.replace('\\-', '-').replace('\\&', '').replace('\\ ', ' ')
    line = line.replace('\\e', '\\').replace('\\(em', '--')
    return re.sub(r'\s+', ' ', line).strip()


def page_items(path):
    """(section, subsection, tag, body) of each .TP item of a page."""
    items = []
    section = subsection = None
    lines = open(path, encoding='utf-8').read().splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith('.SH'):
            section, subsection = roff_text(line), None
        elif line.startswith('.SS'):
            subsection = roff_text(line)
        elif (line.startswith('.TP') and i + 1 < len(lines) and
              not re.match(r'^\.(TP|SS|SH)', lines[i + 1])):
            tag = roff_text(lines[i + 1])
            body = []
            i += 2
            while i < len(lines) and not re.match(r'^\.(TP|SS|SH)', lines[i]):
                body.append(roff_text(lines[i]))
                i += 1
            items.append((section, subsection, tag, ' '.join(body)))
            continue
        i += 1
    return items


def page_options(path, commands):
    """{None: tags of OPTIONS, COMMAND: tags of .SS COMMAND in COMMANDS}."""
    scopes = {None: set()}
    for section, sub, tag, _ in page_items(path):
        if not tag.startswith('-'):
            continue
        if section == 'OPTIONS':
            scopes[None].add(tag)
        elif section == 'COMMANDS' and sub and commands:
            words = sub.split()
            name = words[1] if len(words) > 1 and words[0] in PROGRAMS \
                else words[0]
            scopes.setdefault(name, set()).add(tag)
    return scopes


def compare(what, listed, documented):
    errors = []
    for t in sorted(listed - documented):
        errors.append('%s: "%s" is in --help, not in the man page' %
                      (what, t))
    for t in sorted(documented - listed):
        errors.append('%s: "%s" is in the man page, not in --help' %
                      (what, t))
    return errors


def check_program(name, exe, page):
    _, commands, fmt = PROGRAMS[name]
    main_help = run_help(exe, [])
    if fmt == 'glib':
        main = glib_options(main_help) | {HELP_TAG}
        helps = {None: main}
        for c in commands:
            helps[c] = glib_options(run_help(exe, [c])) - main
    else:
        helps = {None: {HELP_TAG}}
        helps.update(command_options(main_help))
        commands = [c for c in helps if c]
    documented = page_options(page, commands)
    errors = []
    for scope, listed in helps.items():
        what = name + (' ' + scope if scope else '')
        errors += compare(what, listed, documented.get(scope, set()))
    for scope in set(documented) - set(helps):
        errors.append('%s: the man page has options of "%s", which is not '
                      'one of its commands' % (name, scope))
    return errors


def schema_keys(source):
    """{(group, key): default or None} of the VcConfigKey tables."""
    text = open(source, encoding='utf-8').read()
    macros = dict(re.findall(r'#define (\w+) "([^"]*)"', text))
    keys = {}
    for m in re.finditer(r'\{\s*(?:"([^"]+)"|(\w+)),\s*"([^"]+)",\s*'
                         r'VC_CONFIG_\w+,\s*(?:"([^"]*)"|NULL)', text):
        group = m.group(1) or macros[m.group(2)]
        keys[(group, m.group(3))] = m.group(4)
    return keys


def check_config(page, source):
    keys = schema_keys(source)
    documented = {}
    for _, sub, tag, body in page_items(page):
        m = re.match(r'^\[(\S+)( [A-Z]+)?\]$', sub or '')
        k = re.match(r'^([a-z][\w-]*)=', tag)
        if m and k:
            group = m.group(1) + (' *' if m.group(2) else '')
            documented[(group, k.group(1))] = tag + ' ' + body
    errors = ['[%s] %s: accepted by %s, not in the man page' %
              (g, k, os.path.basename(source))
              for g, k in sorted(set(keys) - set(documented))]
    errors += ['[%s] %s: in the man page, unknown to %s' %
               (g, k, os.path.basename(source))
               for g, k in sorted(set(documented) - set(keys))]
    for gk in sorted(set(keys) & set(documented)):
        default = keys[gk]
        if default and default not in documented[gk]:
            errors.append('[%s] %s: the default "%s" is not in its item' %
                          (gk[0], gk[1], default))
    return errors


def check_render(page):
    p = subprocess.run(['groff', '-man', '-Tutf8', '-ww', '-z', page],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True)
    if p.returncode != 0 or p.stderr:
        return ['groff: ' + l for l in (p.stderr or 'failed').splitlines()]
    return []


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--man-dir', required=True)
    ap.add_argument('--config', action='append', default=[])
    ap.add_argument('programs', nargs='+')
    args = ap.parse_args()

    pages = sorted(f for f in os.listdir(args.man_dir)
                   if re.match(r'.*\.[1-8]$', f))
    progs = dict(p.split('=', 1) for p in args.programs)
    checks = []
    for name in sorted(PROGRAMS):
        page = '%s.%s' % (name, PROGRAMS[name][0])
        checks.append(('%s options' % page,
                       lambda n=name, p=page: check_program(
                           n, progs[n], os.path.join(args.man_dir, p))
                       if n in progs else ['no executable given']))
    for c in args.config:
        page, source = c.split('=', 1)
        checks.append(('%s configuration keys' % page,
                       lambda p=page, s=source: check_config(
                           os.path.join(args.man_dir, p), s)))
    known = {'%s.%s' % (n, v[0]) for n, v in PROGRAMS.items()} | OTHER_PAGES
    for page in pages:
        if page not in known:
            checks.append(('%s belongs to a program' % page,
                           lambda p=page: ['no program in PROGRAMS has it']))
        if shutil.which('groff'):
            checks.append(('%s renders without warnings' % page,
                           lambda p=page: check_render(
                               os.path.join(args.man_dir, p))))
        else:
            checks.append(('%s renders # SKIP no groff' % page,
                           lambda: []))
    for page in sorted(known - set(pages)):
        checks.append(('%s exists' % page, lambda: ['missing']))

    print('1..%d' % len(checks))
    failed = 0
    for i, (what, fn) in enumerate(checks, 1):
        try:
            errors = fn()
        except (OSError, RuntimeError, subprocess.SubprocessError) as e:
            errors = [str(e)]
        print('%s %d - %s' % ('not ok' if errors else 'ok', i, what))
        for e in errors:
            print('# ' + e)
        failed += bool(errors)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
