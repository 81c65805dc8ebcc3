"Bad inputs through the magics (a real IPython) and the console scripts: each is one line, never a traceback"
import os, sys, json, subprocess, textwrap
from pathlib import Path
import pytest
from conftest import Sandbox, IS_ROOT

LONG = 'x' * 300  # no filesystem has such a name
BAD_MANIFEST = '{"version": 1, "entries": [], "packages": "oops"}'

# (what storage holds before the line runs, the line); storage is new for each
MAGICS = [
    ({}, '%persist --packages -r --python /bin/true'),
    ({}, '%sshsetup --import /nonexistent --no-check'),
    ({}, '%sshsetup --import /dev/zero --no-check'),
    ({}, '%sshsetup --import / --no-check'),
    ({}, '%tunnel 8000 -p "ssh://[::1"'),
    ({}, '%tunnel 8000 -p ssh://h:notaport'),
    ({}, '%tunnel 8000 -p ssh://h:99999'),
    ({}, '%tunnel 8000 -p nosuchprovider'),
    ({}, '%tunnel notaport'),
    ({}, '%sshsetup --server --port 99999'),
    ({}, f'%persist {LONG} --create'),
    ({}, '%persist /etc'),
    ({}, '%persist --undo .nothing'),
    ({}, '%persist "unclosed'),
    ({'persistlab.json': BAD_MANIFEST}, '%persist --list'),
    ({'persistlab.json': BAD_MANIFEST}, '%persist --packages --list'),
    ({'persistlab.json': BAD_MANIFEST}, '%persist --packages -r'),
    ({'persistlab.json': BAD_MANIFEST}, '%persist -r'),
    ({'persistlab.json': '[]'}, '%persist --list'),
    ({'persistlab-secrets.json': '[1, 2]'}, '%tunnel 8000 -p ngrok'),
    ({'persistlab-secrets.json': 'not json'}, '%tunnel 8000 -p ngrok'),
]

DRIVER = textwrap.dedent('''
    import os, sys, json
    from pathlib import Path
    from IPython.testing.globalipapp import start_ipython
    cases, base = json.loads(sys.argv[1]), Path(sys.argv[2])
    def fresh(i, files):
        st = base/f'st{i}'; st.mkdir()
        for n, t in files.items(): (st/n).write_text(t)
        os.environ['PERSISTLAB_STORAGE'] = str(st)
    fresh('load', {'persistlab.json': %r})  # %%load_ext itself, on storage whose manifest has packages of the wrong shape
    ip = start_ipython(); r = ip.run_cell('%%load_ext persistlab')
    print('RESULT', json.dumps(['%%load_ext persistlab', type(r.error_in_exec).__name__ if r.error_in_exec else None]), flush=True)
    for i, (files, line) in enumerate(cases):
        fresh(i, files)
        r = ip.run_cell(line)
        e = r.error_in_exec or r.error_before_exec
        print(); print('RESULT', json.dumps([line, type(e).__name__ if e else None]), flush=True)
''' % BAD_MANIFEST)

def test_bad_inputs_through_the_magics_are_one_line(sb):
    f = sb.base/'driver.py'; f.write_text(DRIVER)
    r = sb.run(sys.executable, f, json.dumps(MAGICS), sb.base, check=False, PERSISTLAB_RUNTIME=sb.base/'rt', timeout=300)
    got = [json.loads(l[7:]) for l in r.stdout.splitlines() if l.startswith('RESULT ')]
    assert len(got) == len(MAGICS) + 1, r.stdout[-3000:] + r.stderr[-3000:]
    bad = [(line, err) for line, err in got if err not in (None, 'UsageError')]
    assert not bad and 'Traceback' not in r.stdout + r.stderr, (bad, r.stdout[-3000:], r.stderr[-3000:])

# console scripts: (entry point, arguments, what storage holds, exit code: 1 refused, 0 a report that says what is wrong)
CLI = [
    ('packages_cli', ['--restore', '--python', '/bin/true'], {}, 1),
    ('packages_cli', ['--list'], {'persistlab.json': BAD_MANIFEST}, 0),
    ('packages_cli', ['--restore'], {'persistlab.json': BAD_MANIFEST}, 1),
    ('status_cli', [], {'persistlab.json': BAD_MANIFEST}, 0),
    ('restore_cli', [], {'persistlab.json': BAD_MANIFEST}, 0),
    ('persist_cli', [LONG, '--create'], {}, 1),
    ('persist_cli', ['.local', '--to', '/tmp/a\nb'], {}, 1),
    ('status_cli', [], {'persistlab.json': '{"version": 1, "entries": 5}'}, 1),
]

@pytest.mark.parametrize('name,args,files,rc', CLI, ids=[f'{c[0]}-{i}' for i, c in enumerate(CLI)])
def test_bad_inputs_through_the_console_scripts_are_one_line(sb, name, args, files, rc):
    for n, t in files.items(): (sb.storage/n).write_text(t)
    (sb.home/'.local').mkdir()
    f = sb.base/f'{name}.py'; f.write_text(f'import sys\nfrom persistlab.cli import {name}\nsys.exit({name}())\n')
    r = sb.run(sys.executable, f, *args, check=False)
    assert 'Traceback' not in r.stderr and len(r.stderr.strip().splitlines()) <= 1, r.stderr
    assert r.returncode == rc, (r.stdout, r.stderr)
    if files.get('persistlab.json') == BAD_MANIFEST and name != 'restore_cli': assert "'packages' is a str" in r.stdout + r.stderr, (r.stdout, r.stderr)

@pytest.mark.skipif(not IS_ROOT, reason='a mount point needs root')
def test_undo_on_a_mount_point_is_one_line_and_keeps_the_link(sb):
    (sb.home/'.local').mkdir(); (sb.home/'.local/f').write_text('1')
    sb.py("from persistlab.persist import persist; persist(['.local'])")
    s = sb.storage/'.local'
    subprocess.run(['mount', '--bind', str(s), str(s)], check=True)
    try:
        r = sb.py("from persistlab.cli import _run; from persistlab.persist import undo; _run(undo, '.local')", check=False)
        assert 'Traceback' not in r.stderr and len(r.stderr.strip().splitlines()) <= 1, r.stderr
        assert (sb.home/'.local/f').read_text() == '1'
        if r.returncode: assert os.readlink(sb.home/'.local') == str(s)  # refused: as it was
    finally: subprocess.run(['umount', '-l', str(s)])

def test_thirty_thousand_recorded_wheels_fit_the_command_line(tmp_path):
    "Fetching wheels for 30,000 recorded packages: the requirements go through a file, so pip starts (argv has no E2BIG)"
    from persistlab.packages import fetch_wheels
    pip = tmp_path/'python'  # a stand-in interpreter whose `-m pip wheel -r FILE -w DEST` writes one wheel per requirement line
    pip.write_text('#!/bin/sh\nwhile [ $# -gt 0 ]; do case $1 in -w) d=$2; shift;; -r) r=$2; shift;; esac; shift; done\n'
                   'sed "s/==/-/; s/$/-py3-none-any.whl/" "$r" | (cd "$d" && xargs touch)\n')
    pip.chmod(0o755)
    name = lambda i: f'a_package_name_as_long_as_some_real_ones_are_on_the_index_{i:05d}'  # 30,000 of these: 2.4 MB of argv
    dists = {name(i).replace('_', '-'): dict(name=name(i), version='1.0') for i in range(30000)}
    dest = tmp_path/'wh'; dest.mkdir()
    got = fetch_wheels(dict(executable=str(pip), pip=True), dists, dest, quiet=True)
    assert len(got) == 30000 and got[name(29999).replace('_', '-')].name == f'{name(29999)}-1.0-py3-none-any.whl'
