#!/usr/bin/env python3
"""A stand-in for Colab's `/colab/ssh` route: the runtime side of Google's `colab ssh` (google-colab-cli).

Colab's server for this route is not public (google-colab-cli's tests name it as google3's
third_party/colab/sources/{server.ts,websocket_to_ssh.ts}). What this plays is what google-colab-cli 0.7.5's client
(colab_cli/commands/ssh.py) and its wire-contract tests (tests/test_ssh_wire_contract.py) expect of it:
- `GET /colab/ssh?colab-runtime-proxy-token=TOKEN`, a WebSocket upgrade (RFC 6455), with the laptop's public key
  verbatim in an `X-Colab-Ssh-Pubkey` header;
- 401 for a bad token, 400 `missing pubkey`, 400 `unsupported key type` for anything but ssh-ed25519 and
  ecdsa-sha2-nistp{256,384,521} (ssh-rsa is refused), 404 where SSH is not enabled, 429 while another `colab ssh`
  is connected, 502 when the runtime's sshd does not answer (error bodies carry Content-Length: the client reads
  the body only then);
- after the upgrade, the raw SSH stream to the runtime's local sshd in binary frames, both ways.
What Colab does with the header's key on its side (it logs a fresh runtime in with no setup, so it authorizes it
somehow) is not published: this stand-in checks the key's type and authorizes nothing, so a login through it
proves that the runtime's own authorized_keys let the key in.

Usage: colab_ssh_route.py SSHD_PORT (0: SSH not enabled). The token is read from $COLAB_ROUTE_TOKEN (never argv).
Prints `listening 127.0.0.1:PORT` once it accepts connections; logs one line per request to stderr (no token).
"""
import os, sys, socket, base64, hashlib, threading, socketserver
from urllib.parse import urlsplit, parse_qs

GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11'
ALLOWED = ('ssh-ed25519', 'ecdsa-sha2-nistp256', 'ecdsa-sha2-nistp384', 'ecdsa-sha2-nistp521')
SSHD_PORT, TOKEN = int(sys.argv[1]), os.environ['COLAB_ROUTE_TOKEN']
active = threading.Lock()  # one `colab ssh` at a time (the client maps 429 to "Already-active SSH session")

def log(*a): print('route:', *a, file=sys.stderr, flush=True)

def recv_exact(s, n):
    b = b''
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c: raise EOFError
        b += c
    return b

def read_frame(s):
    "(opcode, payload) of one client frame (clients always mask)"
    h = recv_exact(s, 2)
    op, masked, n = h[0] & 0x0f, h[1] & 0x80, h[1] & 0x7f
    if n == 126: n = int.from_bytes(recv_exact(s, 2), 'big')
    elif n == 127: n = int.from_bytes(recv_exact(s, 8), 'big')
    mask = recv_exact(s, 4) if masked else b'\0\0\0\0'
    data = recv_exact(s, n)
    return op, bytes(b ^ mask[i % 4] for i, b in enumerate(data))

def frame(op, data=b''):
    "A server frame (unmasked), FIN set"
    n = len(data)
    head = bytes([0x80 | op]) + (bytes([n]) if n < 126 else bytes([126]) + n.to_bytes(2, 'big') if n < 1 << 16
                                 else bytes([127]) + n.to_bytes(8, 'big'))
    return head + data

class Route(socketserver.BaseRequestHandler):
    def answer(self, status, reason, body=b''):
        log(status, reason, body.decode(errors='replace'))
        self.request.sendall(f'HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Length: {len(body)}\r\n\r\n'.encode() + body)

    def handle(self):
        c = self.request; c.settimeout(10)
        head = b''
        try:
            while b'\r\n\r\n' not in head and len(head) < 65536:
                b = c.recv(4096)
                if not b: return
                head += b
        except OSError: return
        lines = head.split(b'\r\n\r\n', 1)[0].decode('latin-1').split('\r\n')
        try: method, target, _ = lines[0].split(' ', 2)
        except ValueError: return self.answer(400, 'Bad Request', b'bad request line')
        h = {k.strip().lower(): v.strip() for k, _, v in (l.partition(':') for l in lines[1:] if l)}
        u = urlsplit(target)
        if method != 'GET' or u.path != '/colab/ssh' or not SSHD_PORT: return self.answer(404, 'Not Found', b'not found')
        if parse_qs(u.query).get('colab-runtime-proxy-token') != [TOKEN]: return self.answer(401, 'Unauthorized', b'bad token')
        if h.get('upgrade', '').lower() != 'websocket' or 'sec-websocket-key' not in h:
            return self.answer(400, 'Bad Request', b'websocket upgrade expected')
        pub = h.get('x-colab-ssh-pubkey', '')
        if not pub: return self.answer(400, 'Bad Request', b'missing pubkey')
        parts = pub.split()
        if len(parts) < 2 or parts[0] not in ALLOWED: return self.answer(400, 'Bad Request', b'unsupported key type')
        if not active.acquire(blocking=False): return self.answer(429, 'Too Many Requests', b'{"error":"already-active-session"}')
        try:
            try: sshd = socket.create_connection(('127.0.0.1', SSHD_PORT), timeout=5)
            except OSError: return self.answer(502, 'Bad Gateway', b'sshd unreachable')
            accept = base64.b64encode(hashlib.sha1((h['sec-websocket-key'] + GUID).encode()).digest()).decode()
            c.sendall(f'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n'
                      f'Sec-WebSocket-Accept: {accept}\r\n\r\n'.encode())
            log(101, 'bridged', parts[0], parts[1][-12:])
            self.bridge(c, sshd)
        finally: active.release()

    def bridge(self, c, sshd):
        c.settimeout(None); sshd.settimeout(None)
        send = threading.Lock()
        def down():  # sshd -> laptop
            try:
                while (b := sshd.recv(65536)):
                    with send: c.sendall(frame(2, b))
            except OSError: pass
            try:
                with send: c.sendall(frame(8, (1000).to_bytes(2, 'big')))
            except OSError: pass
            try: c.shutdown(socket.SHUT_RDWR)
            except OSError: pass
        t = threading.Thread(target=down, daemon=True); t.start()
        try:
            while True:  # laptop -> sshd
                op, data = read_frame(c)
                if op in (0, 1, 2): sshd.sendall(data)
                elif op == 8: break
                elif op == 9:
                    with send: c.sendall(frame(10, data))
        except (EOFError, OSError): pass
        finally:
            try: sshd.shutdown(socket.SHUT_RDWR)
            except OSError: pass
            t.join(5); sshd.close()
            log('closed')

class Server(socketserver.ThreadingTCPServer):
    daemon_threads = allow_reuse_address = True

if __name__ == '__main__':
    with Server(('127.0.0.1', 0), Route) as s:
        print(f'listening 127.0.0.1:{s.server_address[1]}', flush=True)
        s.serve_forever()
