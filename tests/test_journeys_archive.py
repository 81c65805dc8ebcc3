"""Journeys on Colab, Kaggle and Deepnote replicas: the cell exactly as the docs print it, a real `pip install --user`,
a second VM (new home, storage not mounted yet) and a kernel restart; checked the way a user checks (the package
imports, its command runs, the snapshot in storage still holds it)"""
import os, re, subprocess
import pytest
from replicas import doc_cell, wheel
from persistlab.procs import free_port

DOCS = dict(colab='30_bootstrap.ipynb', kaggle='22_guide_kaggle.ipynb', deepnote='22_guide_kaggle.ipynb')

def storage(vm):
    return dict(colab=lambda: vm.drive/'MyDrive/persistlab', kaggle=lambda: vm.working/'persistlab',
                deepnote=lambda: vm.work/'.persistlab')[vm.platform]()

def in_snapshot(vm, what):
    "Does the `.local` snapshot in storage (read from outside the VM, as Drive's web page would) hold `what`?"
    snaps = sorted((storage(vm)/'snapshots').glob('.local*'))
    assert snaps, f'no .local snapshot in {storage(vm)}'
    names = subprocess.run(['tar', '-tf', str(snaps[-1])], capture_output=True, text=True, check=True).stdout
    return what in names

def shown(cells): return '\n'.join(repr(c) for c in cells)

@pytest.mark.parametrize('platform', ['colab', 'kaggle', 'deepnote'])
def test_two_sessions_and_a_kernel_restart(replica, platform):
    cell = doc_cell(DOCS[platform], '%load_ext persistlab')
    vm = replica(platform); wheel(vm.wheelhouse, 'jtool', x=1)
    cs = vm.run([cell, '!pip install -q --user jtool', '%persist --save', 'import jtool; print("X", jtool.X)'])
    assert all(c.ok for c in cs) and 'X 1' in cs[3].out, shown(cs)
    assert in_snapshot(vm, 'bin/jtool') and in_snapshot(vm, 'jtool/__init__.py'), shown(cs)
    vm.close()

    vm2 = replica(platform); wheel(vm2.wheelhouse, 'jtool2', x=2)  # the next session: new VM, new home, same storage
    assert not vm2.p('/root/.local/bin/jtool').exists()
    cs = vm2.run([cell, 'import jtool; print("X", jtool.X)', '!jtool'])
    assert all(c.ok for c in cs) and 'X 1' in cs[1].out and 'jtool 1.0 ran' in cs[2].out, shown(cs)
    assert in_snapshot(vm2, 'bin/jtool'), 'the second session overwrote the snapshot'

    cs = vm2.run(['!pip install -q --user jtool2'])  # more work after the restore ...
    assert cs[0].ok, shown(cs)
    cs = vm2.run([cell, 'import jtool, jtool2; print("X", jtool.X, jtool2.X)', '!jtool2'])  # ... a kernel restart, the cell again
    assert all(c.ok for c in cs) and 'X 1 2' in cs[1].out and 'jtool2 1.0 ran' in cs[2].out, shown(cs)
    assert in_snapshot(vm2, 'bin/jtool')

def test_colab_keys_made_in_session_one_work_in_session_two(replica):
    "A fresh VM has no ~/.ssh: the cell skips it; once keys exist, the same cell keeps them; the next VM gets them back usable"
    cell = doc_cell(DOCS['colab'], '%load_ext persistlab')
    vm = replica('colab')
    cs = vm.run([cell, '%sshsetup --no-check', cell])
    assert all(c.ok for c in cs) and vm.p('/root/.ssh/id_ed25519').exists(), shown(cs)
    assert list((storage(vm)/'snapshots').glob('.ssh.tar.*'))  # zstd, or gzip where the machine has no zstd
    vm.close()
    vm2 = replica('colab')
    cs = vm2.run([cell, '!stat -c "%a %n" ~/.ssh ~/.ssh/id_ed25519 ~/.ssh/id_ed25519.pub\n'
                        '!ssh-keygen -y -f ~/.ssh/id_ed25519 >/dev/null && echo KEY-OK'])
    assert all(c.ok for c in cs), shown(cs)
    assert '700 /root/.ssh\n600 /root/.ssh/id_ed25519\n644 /root/.ssh/id_ed25519.pub' in cs[1].out and 'KEY-OK' in cs[1].out, shown(cs)

def test_colab_git_identity_and_keys_from_sshsetup_reach_the_next_vm(replica):
    "USERS.md section 2: the bootstrap cell once, then %sshsetup's keys and git name/email; the next VM has them all"
    cell = doc_cell(DOCS['colab'], '%load_ext persistlab')
    assert '.gitconfig' in cell
    vm = replica('colab')
    cs = vm.run([cell, '%sshsetup --no-check --name "Ada Lovelace" --email ada@example.com'])  # no second run of the cell
    assert all(c.ok for c in cs), shown(cs)
    vm.close()
    vm2 = replica('colab')
    cs = vm2.run([cell, '!git config --global user.name; git config --global user.email\n'
                        '!ssh-keygen -y -f ~/.ssh/id_ed25519 >/dev/null && echo KEY-OK'])
    assert all(c.ok for c in cs), shown(cs)
    assert 'Ada Lovelace\nada@example.com' in cs[1].out and 'KEY-OK' in cs[1].out, shown(cs)

def test_kaggle_keys_asked_for_early_stay_out_of_the_public_output(replica):
    "Kaggle publishes /kaggle/working: `%persist .ssh` before the key exists, then `%sshsetup`, `--save`, `%sshsetup --server`: no private key lands there"
    cs_bin = os.environ.get('PERSISTLAB_TEST_CODE_SERVER', '/opt/persistlab-test/code-server/node_modules/.bin/code-server')  # what .ci/run installs
    vm = replica('kaggle', env=dict(PERSISTLAB_CODE_SERVER=cs_bin))
    vm.sh('mkdir -p ~/.config/tool && echo x > ~/.config/tool/settings')
    cs = vm.run([doc_cell('22_guide_kaggle.ipynb', '%load_ext persistlab') + '\n%persist .config', '%persist .ssh', '%sshsetup --no-check', '%persist --save',
                 f'%sshsetup --server --accept-risk --listen 127.0.0.1 --port {free_port()} --authorized-keys ~/.ssh/id_ed25519.pub',
                 '%sshsetup --stop', '%codeserver -p none', '%codeserver --stop'])
    shown = '\n'.join(repr(c) for c in cs)
    assert all(c.ok for c in cs[:4]) and re.search(r'sshd +running', cs[4].out), shown  # (sshd runs: its host key was made)
    assert re.search(r'\.ssh +not saved: /kaggle/working is saved as this notebook.s output', cs[2].out), shown
    assert re.search(r'\.config +saved', cs[3].out) and re.search(r'\.local +saved', cs[3].out) and cs[3].out.count('public output') == 1, shown  # the note once
    files = [p for p in vm.working.rglob('*') if p.is_file()]
    leaked = [str(p) for p in files if 'ssh_host_' in p.name or p.name.startswith('id_') or '.ssh' in p.name or
              (p.name.endswith(('.tar.zst', '.tar.gz')) and 'id_ed25519' in subprocess.run(['tar', '-tf', str(p)], capture_output=True, text=True).stdout)]
    assert not leaked, (leaked, shown)
    # code-server's settings (VS Code keeps a copy of every file saved in it there) stay in home, and the row says why
    assert re.search(r'settings +kept in: /root/\.local/share/code-server \(not in storage: /kaggle/working is saved', cs[6].out), shown
    assert not [p for p in files if 'user-data' in str(p)], shown
