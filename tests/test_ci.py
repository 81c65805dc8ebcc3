"""The README's test command as a normal user: without sudo it says in one line what to do, before it changes anything."""
import os, shutil, subprocess, tempfile
from pathlib import Path
import pytest
from conftest import ROOT, IS_ROOT

@pytest.mark.skipif(not IS_ROOT, reason='switching to a normal user needs root (CI runs as root)')
def test_ci_without_sudo_says_what_to_do(tmp_path):
    tmp_path = Path(tempfile.mkdtemp(prefix='pl-ci-'))  # pytest's own tmp dirs are root's only (0700)
    try: _no_sudo(tmp_path)
    finally: shutil.rmtree(tmp_path, ignore_errors=True)

def _no_sudo(tmp_path):
    clone = tmp_path/'clone'
    subprocess.run(['git', 'clone', '-q', str(ROOT), str(clone)], check=True)
    shutil.copy(ROOT/'.ci/run', clone/'.ci/run')  # the checkout under test, committed or not
    os.chmod(tmp_path, 0o755)
    bin_ = tmp_path/'bin'; bin_.mkdir()
    for t in ('bash', 'id', 'dirname', 'env', 'cat', 'printf'):  # a PATH with the basics and no sudo
        if shutil.which(t): os.symlink(shutil.which(t), bin_/t)
    r = subprocess.run([shutil.which('setpriv'), '--reuid=nobody', '--regid=nogroup', '--clear-groups', str(bin_/'bash'), '.ci/run'], cwd=clone,
                       env=dict(PATH=str(bin_), HOME=str(tmp_path)), capture_output=True, text=True, timeout=30)
    assert r.returncode == 1, r.stdout + r.stderr
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and 'needs root' in lines[0] and 'sudo' in lines[0], r.stderr
    assert not r.stdout.strip(), r.stdout  # nothing ran: no step was started
