"""Paperspace with fast.ai's own setup: fastai/paperspace-setup's real `setup.sh` and `pre-run.sh` (vendored, unchanged,
in tests/data/fastai-paperspace-setup), then persistlab, then fast.ai's `setup.sh` again, then a fresh instance"""
import re, shutil, textwrap
from pathlib import Path
import pytest
from persistlab.procs import free_port

FASTAI = Path(__file__).parent/'data/fastai-paperspace-setup'
FASTAI_DIRS = '.local .ssh .config .ipython .fastai .jupyter .conda .kaggle'.split()
FASTAI_FILES = '.git-credentials .gitconfig .bash_history'.split()
PKG = 'fastai_neighbour'  # what the user pip-installs into ~/.local

def jupyter_starts(vm) -> str:
    "Start Jupyter the way the image does (run.sh sources /storage/pre-run.sh, then execs it); 'up' once it answers"
    port, log = free_port(), vm.base/'jupyter.log'
    r = vm.sh(textwrap.dedent(f'''
        bash {vm.runsh} jupyter server --no-browser --allow-root --ip 127.0.0.1 --port {port} \\
             --IdentityProvider.token=t0k --ServerApp.open_browser=False > {log} 2>&1 &
        pid=$!
        for i in $(seq 150); do
          if python3 -c "import urllib.request as u; u.urlopen('http://127.0.0.1:{port}/api/status?token=t0k', timeout=1)" 2>/dev/null
          then echo up; break; fi
          kill -0 $pid 2>/dev/null || {{ echo died; break; }}
          sleep 0.2
        done
        kill $pid 2>/dev/null; wait $pid 2>/dev/null; true'''), timeout=90)
    return r.stdout + ('' if r.stdout.startswith('up') else log.read_text())

def test_persistlab_next_to_fastai_setup(replica, tmp_path):
    # instance 1: the course's steps, in a terminal: clone fastai/paperspace-setup, ./setup.sh, start a new instance
    vm1 = replica('paperspace')
    shutil.copytree(FASTAI, vm1.notebooks/'paperspace-setup', symlinks=True)
    assert 'install complete' in vm1.sh('cd paperspace-setup && ./setup.sh').stdout
    storage = vm1.storage
    assert (storage/'pre-run.sh').read_text() == (FASTAI/'pre-run.sh').read_text()

    # instance 2: the image's run.sh sourced fast.ai's pre-run.sh: home is linked into /storage/cfg
    vm2 = replica('paperspace')
    for p in FASTAI_DIRS + FASTAI_FILES: assert vm2.p(f'/root/{p}').is_symlink(), (p, vm2.boot.stdout, vm2.boot.stderr)
    # the user installs a package, makes a key, and hands .local and .ssh to persistlab in a notebook
    src = vm2.notebooks/'src'; (src/PKG).mkdir(parents=True)
    (src/PKG/'__init__.py').write_text('X = "still here"\n')
    (src/'pyproject.toml').write_text(f'[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n'
                                      f'[project]\nname = "{PKG}"\nversion = "1.0"\n')
    vm2.sh(f'pip install -q --user --no-deps --no-build-isolation ./src && ssh-keygen -q -t ed25519 -N "" -f ~/.ssh/id_ed25519')
    c = vm2.run(['%load_ext persistlab', '%persist .local .ssh', 'r = %persist --list\nprint(r)'])
    assert all(x.ok for x in c), c
    print('instance 2: %persist .local .ssh next to fast.ai\'s links\n' + c[1].out + c[2].out)
    assert '# >>> persistlab >>>' in (storage/'pre-run.sh').read_text()
    # later in the session: a host key and a note added to the linked .ssh (fast.ai users expect them to stay)
    vm2.sh('echo "github.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl" >> ~/.ssh/known_hosts')

    vm2.close()

    def fresh_instance(n):
        "A new instance: Jupyter starts, fast.ai's links and persistlab's paths all work; returns the backup folders"
        vm = replica('paperspace')
        j = jupyter_starts(vm)
        assert j.startswith('up'), (n, j, vm.boot.stderr)
        for p in FASTAI_DIRS + FASTAI_FILES:
            assert vm.p(f'/root/{p}').is_symlink() and str(vm.p(f'/root/{p}').readlink()).startswith('/storage/cfg/'), p
        r = vm.sh(f'python3 -c "import {PKG} as m; print(\'IMPORT\', m.X, m.__file__)"; echo "SSH $(ls ~/.ssh | tr "\\n" " ")"; '
                  'echo "KNOWN $(grep -c "^github.com " ~/.ssh/known_hosts)"; echo "MODE $(stat -L -c %a ~/.ssh)"')
        got = dict(l.split(' ', 1) for l in r.stdout.strip().split('\n'))
        assert got['IMPORT'].startswith('still here /root/.local/lib/python3.') and f'/site-packages/{PKG}/' in got['IMPORT'], r
        assert {'id_ed25519', 'id_ed25519.pub', 'known_hosts'} <= set(got['SSH'].split()), r  # added after %persist, still here
        assert (got['KNOWN'], got['MODE']) == ('1', '700'), r
        c = vm.run(['%load_ext persistlab', 'r = %persist --list\nprint(repr(r))'])
        assert all(x.ok for x in c) and 'Traceback' not in c[1].out, c
        print(f'instance {n}: %persist --list\n{c[1].out}')
        bk = storage/'cfg/.persistlab-backup'
        return vm, sorted(p.name for p in bk.iterdir()) if bk.exists() else []

    # instances 3 and 4: fast.ai's pre-run.sh and persistlab's block in it, both at each boot
    vm3, b3 = fresh_instance(3); vm3.close()
    vm4, b4 = fresh_instance(4)
    assert b3 == b4, (b3, b4)  # a boot adds no backup folder
    # still instance 4: the user runs fast.ai's setup.sh again (a new course version): pre-run.sh is fast.ai's alone
    vm4.sh('cd paperspace-setup && ./setup.sh')
    assert '# >>> persistlab >>>' not in (storage/'pre-run.sh').read_text()
    vm4.close()
    # instance 5: persistlab's block is gone; Jupyter still starts and nothing is lost
    vm5, b5 = fresh_instance(5)
    assert b5 == b4

def test_a_copied_ssh_round_trips_with_save(replica):
    "Without fast.ai's setup `.ssh` is kept as a copy (sshd wants real modes): `%persist --save .ssh` brings home's changes back"
    vm1 = replica('paperspace')
    vm1.sh('mkdir -p ~/.ssh && ssh-keygen -q -t ed25519 -N "" -f ~/.ssh/id_ed25519')
    c = vm1.run(['%load_ext persistlab', '%persist .ssh'])
    assert all(x.ok for x in c) and 'copied' in c[1].out, c
    # later in the session: a host key the user accepted, and a config entry
    vm1.sh('echo "github.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl" >> ~/.ssh/known_hosts; '
           'printf "Host gh\\n  HostName github.com\\n" > ~/.ssh/config')
    c = vm1.run(['%load_ext persistlab', '%persist --save .ssh'])
    assert c[1].ok and 'saved' in c[1].out, c
    vm1.close()
    vm2 = replica('paperspace')  # a fresh instance: the startup hook copies .ssh back, with sshd's modes
    r = vm2.sh('ls ~/.ssh | sort | tr "\\n" " "; echo; stat -c "%a %n" ~/.ssh ~/.ssh/id_ed25519 ~/.ssh/config; test -L ~/.ssh || echo copy')
    assert 'config id_ed25519 id_ed25519.pub known_hosts' in r.stdout, (r.stdout, vm2.boot.stdout, vm2.boot.stderr)
    assert '700 /root/.ssh' in r.stdout and '600 /root/.ssh/id_ed25519' in r.stdout and 'copy' in r.stdout, r.stdout
    assert 'Host gh' in vm2.p('/root/.ssh/config').read_text()
    vm2.close()

def test_paperspace_packages_come_back_at_boot(replica, tmp_path):
    "`!pip install` then `%persist --packages`: the next instance's pre-run.sh installs them before any kernel, once"
    from test_packages import image_site
    from replicas import wheel, doc_cell
    def vm(boot=True):  # the image's site-packages as an overlay: pip writes only into this instance
        v = replica('paperspace', storage=tmp_path/'storage', env=dict(PERSISTLAB_IMAGE_TIME=__import__('time').time()), boot=False)
        sp = image_site(); up = v.base/'overlay'; (up/'u').mkdir(parents=True); (up/'w').mkdir()
        v.sh(f"mount -t overlay overlay -o lowerdir={sp},upperdir={up/'u'},workdir={up/'w'} {sp}")
        if boot: v._boot()
        return v
    vm1 = vm(); wheel(vm1.wheelhouse, 'plab-q', version='1.0', x=7)
    c = vm1.run([doc_cell('20_guide_paperspace.ipynb', '%load_ext persistlab'), '!pip install -q plab-q\n%persist --packages'])
    assert all(x.ok for x in c) and 'plab-q' in c[1].out, c
    vm1.close()
    vm2 = vm()  # a fresh instance: its boot ran /storage/pre-run.sh, persistlab's block in it
    assert 'plab-q' in vm2.boot.stdout and 'installed' in vm2.boot.stdout, (vm2.boot.stdout, vm2.boot.stderr)
    assert vm2.sh('python3 -c "import plab_q; print(\'Q\', plab_q.X)"').stdout.strip() == 'Q 7'  # a terminal, no %load_ext
    c = vm2.run(['%load_ext persistlab', 'import plab_q; print("Q", plab_q.X)'])  # the kernel: nothing installed twice
    assert c[1].ok and c[1].out.strip() == 'Q 7' and 'installed' not in c[0].out, c
    assert not list(image_site().glob('plab_q*'))  # the host's Python is untouched

def test_paperspace_user_scripts_on_path_and_no_empty_backups(replica, tmp_path):
    "`pip install --user` a tool, `%persist .local`: on fresh instances `!tool` runs, and a boot adds no backup folder"
    from replicas import wheel, doc_cell
    vm1 = replica('paperspace', storage=tmp_path/'storage'); wheel(vm1.wheelhouse, 'plab-tool', x=3)
    c = vm1.run([doc_cell('20_guide_paperspace.ipynb', '%load_ext persistlab'), '!pip install -q --user plab-tool\n%persist .local'])
    assert all(x.ok for x in c), c
    vm1.close()
    backups = lambda: sorted(p.name for p in (tmp_path/'storage/.persistlab-backup').glob('*'))
    before = backups()
    for n in (2, 3):  # fresh instances: the image's own ~/.local (only empty folders) is in the way at each boot
        vm = replica('paperspace', storage=tmp_path/'storage')
        assert vm.p('/root/.local').is_symlink(), (vm.boot.stdout, vm.boot.stderr)
        c = vm.run(['!plab-tool'])  # a `!` command in the kernel, whose environment comes from the boot
        assert c[0].ok and 'plab-tool 1.0 ran' in c[0].out, (n, c, vm.env.get('PATH'))
        assert 'plab-tool 1.0 ran' in vm.sh('plab-tool').stdout  # a terminal started from the same environment
        assert backups() == before, (n, backups(), vm.boot.stdout)
        vm.close()
