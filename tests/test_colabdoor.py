"""Colab's own SSH door, end to end: a Colab replica whose image has sshd and COLAB_ENABLE_SSH=1, its /colab/ssh route
played by tests/standins/colab_ssh_route.py (written from google-colab-cli's client), and on the laptop the real OpenSSH
`ssh` with Google's real `colab ssh --proxy-mode` (tools/install-colab-cli.sh) as its ProxyCommand. 127.0.0.1 only.

The seam that points Google's client at the stand-in is its own session store, unpatched: `colab ssh --proxy-mode -s
NAME` reads NAME's runtime-proxy `url` and `token` from `~/.config/colab-cli/sessions.json` (what `colab new` writes;
`colab --config FILE` names another) and opens `ws://<url's host>/colab/ssh?colab-runtime-proxy-token=<token>`. With
`token_expires_at` in the future it asks Google nothing (no sign-in, no refresh), and `"enable_update_check": false`
in `~/.config/colab-cli/settings.json` stops its daily PyPI check."""
import os, re, json, signal, secrets, subprocess
from pathlib import Path
import pytest
from replicas import doc_cell

COLAB = os.environ.get('PERSISTLAB_TEST_COLAB_CLI', '')
ROUTE = Path(__file__).parent/'standins'/'colab_ssh_route.py'
pytestmark = [pytest.mark.skipif(os.geteuid() != 0, reason='replicas (mount namespaces) need root'),
              pytest.mark.skipif(not (COLAB and Path(COLAB).exists()),
                                 reason="PERSISTLAB_TEST_COLAB_CLI: the colab of tools/install-colab-cli.sh (.ci/run sets it)")]

class Route:
    "The stand-in /colab/ssh route in front of one VM's sshd, and the runtime-proxy token only it and the laptop know"
    def __init__(self, vm, base):
        self.token, self.log = secrets.token_urlsafe(16), Path(base)/f'route-{vm.sshd_port}.log'
        self.p = subprocess.Popen(['python3', str(ROUTE), str(vm.sshd_port)], stdout=subprocess.PIPE, stderr=open(self.log, 'w'),
                                  text=True, env={**os.environ, 'COLAB_ROUTE_TOKEN': self.token}, start_new_session=True)
        line = self.p.stdout.readline()
        assert line.startswith('listening 127.0.0.1:'), line + self.log.read_text()
        self.url = 'http://' + line.split()[1]
    def stop(self):
        try: os.killpg(self.p.pid, signal.SIGKILL)
        except ProcessLookupError: pass
        self.p.wait(10); self.p.stdout.close()

@pytest.fixture
def routes(tmp_path):
    made = []
    def route(vm): made.append(Route(vm, tmp_path)); return made[-1]
    yield route
    for r in made: r.stop()

class Laptop:
    "A laptop: its own home (keys, colab-cli's session store), Google's colab on PATH, the real ssh"
    def __init__(self, base):
        self.home = Path(base)/'laptop'; (self.home/'.ssh').mkdir(parents=True, mode=0o700)
        (self.home/'.config/colab-cli').mkdir(parents=True)
        (self.home/'.config/colab-cli/settings.json').write_text('{"enable_update_check": false}')  # no PyPI check
        self.key = self.keygen('id_ed25519')
    def keygen(self, name):
        k = self.home/'.ssh'/name
        subprocess.run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', f'{name}@laptop', '-f', str(k)], check=True)
        return k
    def session(self, name, route):
        "What `colab new -s NAME` leaves in colab-cli's store: the runtime's proxy URL and token (the seam to the stand-in)"
        (self.home/'.config/colab-cli/sessions.json').write_text(json.dumps({name: dict(
            name=name, token=route.token, url=route.url, endpoint=f'endpoint-{name}', token_expires_at='2099-01-01T00:00:00Z')}))
    def ssh(self, block, known_hosts, alias, cmd, key=None):
        "The printed ~/.ssh/config block as the laptop's config (its `~` is this laptop's home), strict host key checking"
        cfg = self.home/'.ssh/config'
        b = block.replace('~/', f'{self.home}/')
        if key: b = b.replace(str(self.key), str(key))
        cfg.write_text(b); (self.home/'.ssh/known_hosts').write_text(known_hosts + '\n')
        env = {**os.environ, 'HOME': str(self.home), 'PATH': f"{Path(COLAB).parent}:{os.environ['PATH']}"}
        return subprocess.run(['ssh', '-F', str(cfg), '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=yes',
                               '-o', f'UserKnownHostsFile={self.home}/.ssh/known_hosts', '-o', 'ConnectTimeout=20', alias, cmd],
                              capture_output=True, text=True, timeout=60, env=env)

def sshds(vm):
    "Pids of the sshd processes in the VM (a replica shares this machine's pid namespace: pgrep would count the host's)"
    return sorted(p for p in vm.processes() if Path(f'/proc/{p}/comm').read_text().strip() == 'sshd')

def laptop_side(out):
    "The ~/.ssh/config block and the known_hosts line the cell printed"
    block = re.search(r'~/\.ssh/config on your laptop:\n(Host .*?\n)\n', out, re.S)
    kh = re.search(r'~/\.ssh/known_hosts on your laptop:\n(.+)\n', out)
    assert block and kh, out
    return block.group(1), kh.group(1)

def test_colab_door_key_from_storage_and_same_host_key_on_next_vm(replica, routes, tmp_path):
    "VM 1: the cell authorizes the laptop's key through Colab's own sshd; VM 2 (same Drive): a bare cell, the key from storage logs in and the pinned host key matches"
    laptop = Laptop(tmp_path)
    vm = replica('colab', sshd=True)
    sshd_pid = vm.sh('cat /run/sshd.pid').stdout.strip()
    first, cell = doc_cell('21_guide_colab.ipynb'), doc_cell('21_guide_colab.ipynb', must='%sshsetup --server')  # as the guide prints them
    assert '--github YOUR_GITHUB_USER' in cell
    b, c = vm.run([first, cell.replace('--github YOUR_GITHUB_USER', f'--authorized-keys {laptop.key}.pub')])  # GitHub's keys: offline here
    assert b.ok and c.ok, (b, c)
    block, kh = laptop_side(c.out)
    assert 'ProxyCommand colab ssh --proxy-mode -s gpu1 -i ~/.ssh/id_ed25519' in block and 'HostKeyAlias gpu1' in block, block
    assert all(f'{e}: {x}://vscode-remote/ssh-remote+gpu1/content\n' in c.out for e, x in (('VS Code', 'vscode'), ('Cursor', 'cursor'), ('VSCodium', 'vscodium'))), c.out
    assert sshds(vm) == [int(sshd_pid)]  # Colab's sshd only, reloaded in place (SIGHUP): no second one
    vm.sh('echo vm1 > /content/where')
    route = routes(vm); laptop.session('gpu1', route)
    r = laptop.ssh(block, kh, 'gpu1', 'echo "$(id -un) on $(cat /content/where)"')
    assert r.stdout.strip() == 'root on vm1', r.stderr + route.log.read_text()
    assert laptop.key.with_suffix('.pub').read_text().split()[1][-12:] in route.log.read_text()  # the header carried our key
    other = laptop.keygen('id_other')  # a key nobody authorized: the route only checks its type, so sshd refuses it
    r = laptop.ssh(block.replace('id_ed25519', 'id_other'), kh, 'gpu1', 'echo in')
    assert r.returncode != 0 and 'in' not in r.stdout.split() and 'Permission denied' in r.stderr, r
    vm.close(); route.stop()

    vm2 = replica('colab', sshd=True)  # the next session: a new VM, its image's own host keys, the same Drive
    image_key = vm2.p('/etc/ssh/ssh_host_ed25519_key.pub').read_text().split()[1]
    assert image_key not in kh  # so a strict check against the first VM's key fails unless the kept key is restored
    b2, c2 = vm2.run([first, cell.replace('--github YOUR_GITHUB_USER ', '')])  # the same cells, no keys named: the ones kept in storage
    assert b2.ok and c2.ok, (b2, c2)
    block2, kh2 = laptop_side(c2.out)
    assert kh2 == kh and block2 == block
    vm2.sh('echo vm2 > /content/where')
    route2 = routes(vm2); laptop.session('gpu1', route2)
    r = laptop.ssh(block, kh, 'gpu1', 'echo "$(id -un) on $(cat /content/where)"')
    assert r.stdout.strip() == 'root on vm2', r.stderr + route2.log.read_text()
