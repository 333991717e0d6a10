#!/usr/bin/env python3
"""Check a kadeploy3 environment description (YAML) before deploying it.

    check-env.py [--image PATH] FILE
    check-env.py --self-test

Every key must be one kadeploy3 reads, with a value of the type and, for
the closed ones, among the values it accepts (kadeploy3's environment
loader, lib/kadeploy3/common/environment.rb: kadeploy3 only warns about
an unknown key and ignores it; here it is an error, since a misspelt key
is a setting lost). A `tar` image of OS `linux` needs `boot.kernel` and
`filesystem`, of OS `xen` `boot.hypervisor` too, as kadeploy3 checks.
--image replaces "@IMAGE@" (images/g5k/deploy.sh's placeholder) first.
--self-test checks that descriptions broken in each way are refused.
Exit status: 0 valid, 1 invalid (one line per problem), 2 usage.
"""
import sys

import yaml

COMPRESSIONS = ("gzip", "bzip2", "xz")


def _str(v):
    return isinstance(v, str)


def _int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _bool(v):
    return isinstance(v, bool)


def one_of(*values):
    def check(v):
        return v in values
    check.values = values
    return check


ARCHIVE = {"archive": (_str, True), "compression": (one_of(*COMPRESSIONS), True),
           "script": (_str, False)}
SCHEMA = {
    "name": (_str, True),
    "version": (_int, False),
    "description": (_str, False),
    "author": (_str, False),
    "visibility": (one_of("public", "private", "shared"), False),
    "destructive": (_bool, False),
    "os": (one_of("linux", "xen", "other"), True),
    "image": ({"file": (_str, True), "kind": (one_of("tar", "dd", "fsa"), True),
               "compression": (None, True)}, True),
    "preinstall": (ARCHIVE, False),
    "postinstalls": ([ARCHIVE], False),
    "boot": ({"kernel": (_str, False), "initrd": (_str, False),
              "kernel_params": (_str, False), "hypervisor": (_str, False),
              "hypervisor_params": (_str, False), "block_device": (_str, False),
              "partition": (_int, False)}, False),
    "multipart": (_bool, False),
    "filesystem": (_str, False),
    "partition_type": (_int, False),
    "options": ({"partitions": ([{"id": (_int, True), "device": (_str, True)}],
                                True)}, False),
}


def describe(check):
    if isinstance(check, dict):
        return "a mapping"
    if isinstance(check, list):
        return "a list"
    if hasattr(check, "values"):
        return "one of " + ", ".join(check.values)
    return {_str: "a string", _int: "an integer", _bool: "true or false"}[check]


def check_node(value, schema, path, problems):
    for key, (check, required) in schema.items():
        if required and key not in value:
            problems.append(f"{path}{key}: missing")
    for key, v in value.items():
        where = f"{path}{key}"
        if key not in schema:
            problems.append(f"{where}: not a key kadeploy3 reads")
            continue
        check = schema[key][0]
        if check is None:
            continue
        if isinstance(check, dict):
            if not isinstance(v, dict):
                problems.append(f"{where}: must be {describe(check)}")
            else:
                check_node(v, check, where + ".", problems)
        elif isinstance(check, list):
            if not isinstance(v, list):
                problems.append(f"{where}: must be {describe(check)}")
                continue
            for i, item in enumerate(v):
                if not isinstance(item, dict):
                    problems.append(f"{where}[{i}]: must be a mapping")
                else:
                    check_node(item, check[0], f"{where}[{i}].", problems)
        elif not check(v):
            problems.append(f"{where}: {v!r} is not {describe(check)}")


def check_env(env):
    """The problems of a parsed description, [] if none."""
    if not isinstance(env, dict):
        return ["the description must be a mapping"]
    problems = []
    check_node(env, SCHEMA, "", problems)
    image = env.get("image")
    if isinstance(image, dict):
        kind, comp = image.get("kind"), image.get("compression")
        if kind == "fsa":
            if not (_int(comp) and 0 <= comp <= 9):
                problems.append(f"image.compression: {comp!r} is not 0..9 "
                                f"(fsa image)")
        elif comp is not None and comp not in COMPRESSIONS:
            problems.append(f"image.compression: {comp!r} is not one of "
                            + ", ".join(COMPRESSIONS))
        boot = env.get("boot") if isinstance(env.get("boot"), dict) else {}
        if kind == "tar":
            needed = ["boot.kernel", "filesystem"]
            if env.get("os") == "xen":
                needed.append("boot.hypervisor")
            for name in needed:
                holder = boot if name.startswith("boot.") else env
                if not holder.get(name.split(".")[-1]):
                    problems.append(f"{name}: needed by a tar image of OS "
                                    f"{env.get('os')}")
    if env.get("multipart") is True:
        opts = env.get("options")
        if not isinstance(opts, dict) or "partitions" not in opts:
            problems.append("options.partitions: needed by a multipart image")
    return problems


GOOD = """
name: e
os: linux
image: {file: /e.tgz, kind: tar, compression: gzip}
boot: {kernel: /vmlinuz}
filesystem: ext4
"""
# Each must be refused: (what is wrong, the YAML that follows GOOD's keys).
BAD = [
    ("no name", "os: linux\nimage: {file: /e.tgz, kind: tar, compression: gzip}\n"
     "boot: {kernel: /vmlinuz}\nfilesystem: ext4\n"),
    ("misspelt key", GOOD + "postinstall: []\n"),
    ("unknown OS", GOOD.replace("os: linux", "os: windows")),
    ("version not an integer", GOOD + "version: one\n"),
    ("bad compression", GOOD.replace("compression: gzip", "compression: zip")),
    ("tar without kernel", GOOD.replace("boot: {kernel: /vmlinuz}", "boot: {}")),
    ("tar without filesystem", GOOD.replace("filesystem: ext4", "")),
    ("xen without hypervisor", GOOD.replace("os: linux", "os: xen")),
    ("postinstall without archive", GOOD + "postinstalls:\n  - {compression: gzip}\n"),
    ("boot key misspelt", GOOD.replace("{kernel: /vmlinuz}",
                                       "{kernel: /vmlinuz, initramfs: /i}")),
    ("destructive not a boolean", GOOD + "destructive: 'no'\n"),
    ("multipart without partitions", GOOD + "multipart: true\n"),
]


def self_test():
    failed = 0
    if check_env(yaml.safe_load(GOOD)):
        print(f"not ok: the good description was refused: "
              f"{check_env(yaml.safe_load(GOOD))}")
        failed += 1
    for what, text in BAD:
        problems = check_env(yaml.safe_load(text))
        print(f"{'ok' if problems else 'not ok'}: {what}: "
              f"{problems[0] if problems else 'accepted'}")
        failed += not problems
    return 1 if failed else 0


def main(argv):
    image = None
    args = argv[1:]
    if args == ["--self-test"]:
        return self_test()
    if len(args) == 3 and args[0] == "--image":
        image, args = args[1], args[2:]
    if len(args) != 1 or args[0].startswith("-"):
        print("usage: check-env.py [--image PATH] FILE | --self-test",
              file=sys.stderr)
        return 2
    try:
        with open(args[0], encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        print(f"check-env: {e}", file=sys.stderr)
        return 1
    if image is not None:
        text = text.replace("@IMAGE@", image)
    try:
        env = yaml.safe_load(text)
    except yaml.YAMLError as e:
        print(f"check-env: {args[0]}: not YAML: {e}", file=sys.stderr)
        return 1
    problems = check_env(env)
    for p in problems:
        print(f"check-env: {args[0]}: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
