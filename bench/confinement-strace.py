#!/usr/bin/env python3
# Which system calls (and ioctl requests) each VMM thread makes after it names itself, from `strace -f`
# output: how the allowlists in Sources/VMM/Confinement.swift were found. Usage:
#   strace -f -qq -o TRACE swiftlet boot --no-confine ...; bench/confinement-strace.py TRACE...
# A thread is named by its prctl(PR_SET_NAME, "...") line (Confinement.enter); calls before it are setup.
import re, sys, collections
calls = collections.defaultdict(set)
for path in sys.argv[1:]:
    names = {}
    for line in open(path, errors='replace'):
        m = re.match(r'(\d+)\s+(?:<\.\.\. )?(\w+)[( ]', line)
        if not m: continue
        tid, call = m.group(1), m.group(2)
        n = re.search(r'prctl\(PR_SET_NAME, "([^"]*)"', line)
        if n:
            names[tid] = re.sub(r'\d+$', '', n.group(1)); continue
        if tid not in names or 'resumed>' in line: continue
        if call == 'ioctl':
            r = re.match(r'\d+\s+ioctl\(\d+, ([A-Z_0-9]+|0x[0-9a-f]+)', line)
            call = 'ioctl ' + (r.group(1) if r else '?')
        calls[names[tid]].add(call)
for name in sorted(calls):
    print(f"{name}: {' '.join(sorted(calls[name]))}")
