"Where the saved packages are found again: a remembered --to, `%config`'s storage at %load_ext, the startup hook's persistlab-restore"
import os, sys, subprocess
from pathlib import Path
import pytest
from conftest import ROOT
from test_packages import world, VM, CLI, saved  # noqa: F401 (the module-scoped world: wheels, a local index, an image venv)

def host_path():
    "IPython, fastcore and the rest for the image's Python (after its own site-packages), as a kernel has them"
    import IPython, fastcore
    return ':'.join(map(str, [ROOT, *{Path(m.__file__).parents[1] for m in (IPython, fastcore)}]))

def bare(vm, **kw):
    "The VM's environment with no $PERSISTLAB_STORAGE: the storage must be found as a user's session finds it"
    e = vm.env(**kw); e.pop('PERSISTLAB_STORAGE'); return e

def cli(vm, *args, **kw):
    return subprocess.run([sys.executable, str(CLI), *map(str, args)], env=bare(vm, **kw), capture_output=True, text=True, timeout=120)

def test_a_save_with_to_is_remembered_for_list_restore_and_undo(world, tmp_path):
    vm, storage, _ = saved(world, tmp_path, 'plab-b')
    r = cli(vm, '--list', '--python', vm.py)  # no --to, no $PERSISTLAB_STORAGE
    assert 'plab-b' in r.stdout and 'wheelhouse' in r.stdout, r.stdout + r.stderr
    assert (vm.home/'.persistlab/storage').read_text().strip() == str(storage)
    r = cli(vm, '--forget', 'plab-b')
    assert 'forgotten' in r.stdout, r.stdout + r.stderr

def test_load_ext_restores_from_the_storage_set_in_ipython_config(world, tmp_path):
    "A user who set `c.PersistlabMagics.storage` once: a fresh VM's first `%load_ext` installs the packages, the next line imports"
    _, storage, _ = saved(world, tmp_path, 'plab-b', 'plab-e')
    vm2 = VM(tmp_path/'vm2', storage, world['image'])
    prof = vm2.home/'.ipython/profile_default'; prof.mkdir(parents=True)
    (prof/'ipython_config.py').write_text(f"c.PersistlabMagics.storage = {str(storage)!r}\n")
    cells = "%load_ext persistlab\nimport plab_b, plab_e; print('imported', plab_b.v, plab_e.v)\nexit\n"
    r = subprocess.run([str(vm2.py), '-m', 'IPython', '--no-banner', '--simple-prompt', '--colors=NoColor'], input=cells,
                       env=bare(vm2, PYTHONPATH=host_path(), IPYTHONDIR=vm2.home/'.ipython'),
                       capture_output=True, text=True, timeout=180)
    assert 'imported b1.0 e1.0' in r.stdout, r.stdout + r.stderr

def test_persistlab_restore_in_a_startup_hook_installs_the_packages_too(world, tmp_path):
    "`persistlab-restore` (what a startup hook runs) re-links paths, then installs the saved packages into its own Python"
    _, storage, _ = saved(world, tmp_path, 'plab-b')
    vm2 = VM(tmp_path/'vm2', storage, world['image'])
    env = dict(PYTHONPATH=host_path(), PERSISTLAB_PLATFORM='local', PERSISTLAB_STORAGE=storage)
    r = vm2.run(vm2.py, '-c', 'from persistlab.cli import restore_cli; restore_cli()', **env)
    assert 'plab-b' in r.stdout and 'installed' in r.stdout, r.stdout + r.stderr
    assert vm2.imports('plab_b') == ['b1.0']
    r = vm2.run(vm2.py, '-c', 'from persistlab.cli import restore_cli; restore_cli()', **env)  # again: nothing twice
    assert 'already installed' in r.stdout, r.stdout

def test_cli_names_the_tools_and_a_missing_storage(world, tmp_path):
    vm = VM(tmp_path/'vm', tmp_path/'storage', world['image'])
    r = vm.run(sys.executable, CLI, '--restore', '--tool', 'conda', check=False)
    assert r.returncode == 2 and "'uv', 'pip'" in r.stderr, r.stderr  # argparse: invalid choice, with the choices
    f = tmp_path/'status_cli.py'; f.write_text('from persistlab.cli import status_cli\nstatus_cli()\n')  # as its entry point runs it
    r = subprocess.run([sys.executable, f, '--to', str(tmp_path/'nope')], env=vm.env(), capture_output=True, text=True)
    assert r.returncode == 1 and 'does not exist, so nothing is persisted there' in r.stderr and r.stderr.count('\n') == 1, r.stdout + r.stderr

def test_colab_a_plain_drive_mount_restores_right_after_that_cell(replica, world):
    "Session 2 mounts Drive Google's way, not with --mount: the snapshot and the packages come back after that cell, once"
    from test_packages import colab_vm
    import shutil
    vm1 = colab_vm(replica, world)
    for f in (world['index']/'files').glob('plab_b-1.0-*.whl'): shutil.copy(f, vm1.wheelhouse)
    c = vm1.run(['!pip install -q plab-b\n!mkdir -p ~/.local/share/notes && echo kept > ~/.local/share/notes/n.txt',
                 '%load_ext persistlab\n%persist --mount .local --packages'])
    assert all(x.ok for x in c), c
    c = vm1.run(['%load_ext persistlab\n%persist --mount --packages'])
    assert c[0].ok and 'plab-b' in c[0].out, c
    vm2 = colab_vm(replica, world)
    c = vm2.run(['%load_ext persistlab', "from google.colab import drive; drive.mount('/content/drive')",
                 'import plab_b; print("B", plab_b.v)', '!cat ~/.local/share/notes/n.txt', 'print("next")'])
    assert 'Mount Drive' in c[0].out and 'right after that cell' in c[0].out, c[0]
    assert c[2].ok and c[2].out.strip() == 'B b1.0', c
    assert c[3].out.strip() == 'kept', c
    assert 'installed' not in c[4].out and 'restored' not in c[4].out, c  # once: the watch is gone

def test_magic_options_that_do_not_go_together_say_so(sb):
    "`%persist .local --packages` does both; --wheels without --undo, paths with --list, a missing --to: one line, nothing made"
    from test_ipython import ipython
    (sb.home/'.local/share').mkdir(parents=True)
    r = ipython(sb, f'''
        %load_ext persistlab
        %persist --packages --wheels
        %persist --packages --list .local
        %persist --packages --list --to {sb.base}/nope
        ''')
    assert "--wheels goes with --packages --undo" in r.stderr and "takes no paths" in r.stderr, r.stdout + r.stderr
    assert f"storage {sb.base}/nope does not exist" in r.stderr and not (sb.base/"nope").exists(), r.stderr
    assert not (sb.storage/'persistlab.json').exists()  # nothing was persisted by a refused line

def test_undo_sticks_until_the_package_is_reinstalled(world, tmp_path):
    "`--forget plab-e` while it stays installed: later saves skip it (and say so); a reinstall makes it yours again"
    vm, storage, files = saved(world, tmp_path, 'plab-b', 'plab-e')
    vm.cli('--forget', 'plab-e')
    r = vm.cli('--save', PIP_FIND_LINKS=files, PIP_NO_INDEX='1')
    assert 'forgotten with --undo' in r.stdout, r.stdout
    assert not [l for l in vm.cli('--list').stdout.splitlines() if l.startswith('plab-e')]  # not recorded (its wheel is left)
    vm.pip('install', '--no-index', '--find-links', files, '--force-reinstall', '--no-deps', 'plab-e')
    r = vm.cli('--save', PIP_FIND_LINKS=files, PIP_NO_INDEX='1')
    assert 'plab-e' in r.stdout and 'saved' in r.stdout and 'forgotten' not in r.stdout, r.stdout
    assert [l for l in vm.cli('--list').stdout.splitlines() if l.startswith('plab-e')]
