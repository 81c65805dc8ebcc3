"The replicas themselves: each platform's first state as a new user finds it, and nothing outside them touched"
import os, json, time
from pathlib import Path
import pytest

def test_colab_first_state_drive_kernel_restart_and_fresh_vm(replica):
    vm = replica('colab', secrets={'MY_TOKEN': 'tok-123'})
    r = vm.sh('echo $HOME; pwd; test ! -e ~/.ssh && echo no-ssh; test ! -e /run/sshd && echo no-run-sshd; '
              'test ! -e /content/drive && echo no-drive; echo $COLAB_RELEASE_TAG')
    home, cwd, *rest = r.stdout.split('\n')
    assert (home, cwd, rest[:3]) == ('/root', '/content', ['no-ssh', 'no-run-sshd', 'no-drive']) and rest[3].startswith('release-')
    (vm.drive/'MyDrive/kept.txt').write_text('from an earlier session')
    c1, c2, c3 = vm.run(['from google.colab import drive\ndrive.mount("/content/drive")',
                         'print(open("/content/drive/MyDrive/kept.txt").read())\nopen("/root/made.txt", "w").write("x")',
                         'from google.colab import userdata\nprint(len(userdata.get("MY_TOKEN")))\nuserdata.get("NOPE")'])
    assert c1.ok and 'Mounted at /content/drive' in c1.out, c1
    assert c2.ok and 'from an earlier session' in c2.out, c2
    assert not c3.ok and c3.error.startswith('SecretNotFoundError') and '7' in c3.out and 'tok-123' not in c3.out
    c = vm.run_cell('import os; print(os.path.exists("/root/made.txt"), os.path.ismount("/content/drive"))')  # a kernel restart
    assert 'True True' in c.out, c
    assert vm.p('/root/made.txt').read_text() == 'x' and not Path('/root/made.txt').exists()  # the host's /root is untouched
    vm2 = replica('colab')  # the next session: a new VM, empty home, Drive unmounted but the same folder behind it
    assert vm2.drive == vm.drive and not vm2.p('/root/made.txt').exists() and not vm2.p('/content/drive').exists()
    assert 'from an earlier session' in vm2.run_cell('from google.colab import drive; drive.mount("/content/drive")\n'
                                                     'print(open("/content/drive/MyDrive/kept.txt").read())').out
    assert (vm.drive/'MyDrive').is_dir() and oct(os.stat(vm.base/'secrets.json').st_mode & 0o777) == '0o600'

def test_kaggle_deepnote_paperspace_and_bare_first_states(replica, tmp_path):
    host_had = [m for m in ('/content', '/kaggle', '/storage', '/notebooks') if os.path.exists(m)]
    k = replica('kaggle', secrets={'NGROK_AUTHTOKEN': 'n'})
    r = k.sh('pwd; echo $KAGGLE_KERNEL_RUN_TYPE; touch /kaggle/working/out.csv; touch /kaggle/input/x', check=False)
    assert r.stdout.split() == ['/kaggle/working', 'Interactive'] and 'Read-only file system' in r.stderr
    assert (k.working/'out.csv').exists()
    c = k.run_cell('from kaggle_secrets import UserSecretsClient\nprint(UserSecretsClient().get_secret("NGROK_AUTHTOKEN"))')
    assert c.ok and c.out.strip() == 'n'
    d = replica('deepnote')
    c = d.run_cell('import os, persistlab; print(os.getcwd(), sorted(os.listdir("/work")), os.environ["DEEPNOTE_PROJECT_ID"] != "")\n'
                   'print(persistlab.__file__)')
    assert c.out.split('\n')[0] == '/work [] True' and c.out.split('\n')[1].startswith(str(d.code)), c
    assert not (Path('/work')/'.persistlab').exists()  # the host's /work is hidden, not written
    (tmp_path/'paperspace-storage').mkdir()
    (tmp_path/'paperspace-storage/pre-run.sh').write_text('cd\nexport FROM_PRE_RUN=yes\nmkdir -p ~/.from-pre-run\necho pre-run ran\n')
    p = replica('paperspace')
    assert 'pre-run ran' in p.boot.stdout and p.env['FROM_PRE_RUN'] == 'yes' and p.p('/root/.from-pre-run').is_dir()
    assert p.run_cell('import os; print(os.getcwd(), os.environ["FROM_PRE_RUN"])').out.strip() == '/notebooks yes'
    d.sh('test ! -e /storage && test ! -e /notebooks && test ! -e /kaggle && test ! -e /content')  # others' folders stay theirs
    assert [m for m in ('/content', '/kaggle', '/storage', '/notebooks') if os.path.exists(m)] == host_had  # nothing made on the host
    v = replica('vm')
    assert v.sh('pwd; ls -A ~ | tr "\\n" " "').stdout.split('\n')[0] == '/root'
    r = v.sh('setsid sleep 600 >/dev/null 2>&1 < /dev/null & echo $!')  # a daemon the user started on the VM
    pid = int(r.stdout)
    assert pid in v.processes()
    born = lambda: Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()[19]  # start time: a reused pid differs
    t0, first = time.monotonic(), born()
    v.close()
    def gone():
        try: return born() != first or Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()[0] in 'ZX'
        except OSError: return True
    while not gone() and time.monotonic() - t0 < 10: time.sleep(0.05)
    assert gone()  # stopped with its VM
