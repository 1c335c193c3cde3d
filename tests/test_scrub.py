"""Table tests for memlib.scrub: secrets masked, harmless text kept, argv boundaries kept."""
# ruff: noqa: E501  (one case per line in the shape table reads better than wrapped cases)

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memlib.scrub import MASK, is_secret_key, scrub_argv, scrub_cmdline

M = MASK

# (command line in, expected out) for scrub_cmdline; the argv form is checked on the whitespace split as well
CMDLINE_CASES: list[tuple[str, str]] = [
    # the two secrets of the seed example
    ("python3 workload.py --seconds 120 --db-password s3cr3t", f"python3 workload.py --seconds 120 --db-password {M}"),
    ("workload.py --role leaker --token=tok_live_SECRET123", f"workload.py --role leaker --token={M}"),
    # --word=value / --word value / -word value / word=value
    ("app --password=hunter2", f"app --password={M}"),
    ("app --password hunter2 --port 80", f"app --password {M} --port 80"),
    ("app -password hunter2", f"app -password {M}"),
    ("app PASSWORD=hunter2", f"app PASSWORD={M}"),
    ("app --PassWord=Hunter2", f"app --PassWord={M}"),
    ("app --passwd x1", f"app --passwd {M}"),
    ("env MYSQL_PWD=abc mysql", f"env MYSQL_PWD={M} mysql"),
    ("app --access-token abc", f"app --access-token {M}"),
    ("app --auth_token=abc", f"app --auth_token={M}"),
    ("app --api-key=abc", f"app --api-key={M}"),
    ("app --apikey abc", f"app --apikey {M}"),
    ("app --client-secret abc", f"app --client-secret {M}"),
    ("app --aws-credentials=abc", f"app --aws-credentials={M}"),
    ("app --stripetoken tok", f"app --stripetoken {M}"),
    ("openssl enc -pass x", f"openssl enc -pass {M}"),
    ("app --pswd abc", f"app --pswd {M}"),
    ("app --dbpwd=abc", f"app --dbpwd={M}"),
    ("app --jwt eyJhbGciOi", f"app --jwt {M}"),
    ("app --private-key=abc", f"app --private-key={M}"),
    ("app --aws_access_key AKIA", f"app --aws_access_key {M}"),
    ("app --authorization abc", f"app --authorization {M}"),
    ("app --cookie sid=1", f"app --cookie {M}"),
    (
        "java -Djavax.net.ssl.keyStorePassword=changeit -jar x.jar",
        f"java -Djavax.net.ssl.keyStorePassword={M} -jar x.jar",
    ),
    # value patterns
    ("git clone https://user:pa55@github.com/x.git", f"git clone https://user:{M}@github.com/x.git"),
    ("psql postgresql://app:pw@db:5432/app", f"psql postgresql://app:{M}@db:5432/app"),
    ("curl -H Authorization: Bearer abc.def", f"curl -H Authorization: Bearer {M}"),
    ("curl https://h/api?token=abc&page=2", f"curl https://h/api?token={M}&page=2"),
    ("mysql -uroot -pSECRET db", f"mysql -uroot -p{M} db"),
    ("/usr/bin/mysqldump -u root -pSECRET db", f"/usr/bin/mysqldump -u root -p{M} db"),
    ("sshpass -p SECRET ssh host", f"sshpass -p {M} ssh host"),
    ("openssl rsa -passin pass:SECRET", f"openssl rsa -passin pass:{M}"),
    ("mount -o username=bob,password=pw //s/x /mnt", f"mount -o username=bob,password={M} //s/x /mnt"),
    ("sh -c PGPASSWORD=x;psql", f"sh -c PGPASSWORD={M}"),
    # negatives: kept as they are
    ("ftp --passive host", "ftp --passive host"),
    ("app --bypass-cache 1", "app --bypass-cache 1"),
    ("app --compass north", "app --compass north"),
    ("app --tokens-file /etc/tokens", "app --tokens-file /etc/tokens"),
    ("app --password-file /run/secrets/db", "app --password-file /run/secrets/db"),
    ("docker login --password-stdin registry.io", "docker login --password-stdin registry.io"),
    ("app --password --verbose", "app --password --verbose"),
    ("psql --no-password -h db", "psql --no-password -h db"),
    ("mysql -p dbname", "mysql -p dbname"),
    ("grep -p pattern", "grep -p pattern"),
    ("python -m http.server 8000", "python -m http.server 8000"),
    ("[kworker/0:1-events]", "[kworker/0:1-events]"),
    ("/sbin/init", "/sbin/init"),
    ("ps -eo pid,ppid,user,rss,vsz,cmd --sort=-rss", "ps -eo pid,ppid,user,rss,vsz,cmd --sort=-rss"),
    ("curl https://example.com/a@b", "curl https://example.com/a@b"),
    ("app --user=bob --host=db", "app --user=bob --host=db"),
    ("app --password", "app --password"),
    ("", ""),
]


@pytest.mark.parametrize(("text", "expected"), CMDLINE_CASES)
def test_scrub_cmdline_table(text: str, expected: str) -> None:
    assert scrub_cmdline(text) == expected


@pytest.mark.parametrize(("text", "expected"), [c for c in CMDLINE_CASES if c[0]])
def test_scrub_argv_agrees_on_space_free_args(text: str, expected: str) -> None:
    argv = text.split(" ")
    assert scrub_argv(argv) == expected.split(" ")


ARGV_CASES: list[tuple[list[str], list[str]]] = [
    # a value with spaces is one argv element and is masked whole
    (["app", "--password", "two words"], ["app", "--password", M]),
    (["app", "--secret=a b c"], ["app", f"--secret={M}"]),
    # boundaries kept, embedded shell text scrubbed
    (["sh", "-c", "mysql -pS3 db && echo done"], ["sh", "-c", f"mysql -p{M} db && echo done"]),
    (["sh", "-c", "curl --token abc https://x"], ["sh", "-c", f"curl --token {M} https://x"]),
    (["curl", "-H", "Authorization: Basic dXNlcjpwYXNz"], ["curl", "-H", f"Authorization: Basic {M}"]),
    (["curl", "-H", "Cookie: sid=abc"], ["curl", "-H", f"Cookie: {M}"]),
    (["app", "Bearer", "abc"], ["app", "Bearer", M]),
    (
        ["app", "--key", "-----BEGIN RSA PRIVATE KEY-----\nMIIE\nabc\n-----END RSA PRIVATE KEY-----"],
        ["app", "--key", f"-----BEGIN RSA PRIVATE KEY-----{M}-----END RSA PRIVATE KEY-----"],
    ),
    (["app", "-----BEGIN PRIVATE KEY-----\nMIIE truncated"], ["app", f"-----BEGIN PRIVATE KEY-----{M}"]),
    (["app", "a b", "", "c"], ["app", "a b", "", "c"]),
    (
        ["tool", "--env", '{"HOME": "/root", "AWS_SECRET_ACCESS_KEY": "abc def", "API_TOKEN": "x\\"y"}'],
        ["tool", "--env", f'{{"HOME": "/root", "AWS_SECRET_ACCESS_KEY": "{M}", "API_TOKEN": "{M}"}}'],
    ),
    (
        ["py", "-c", "conf = {'password': 'pw', 'user': 'u'}"],
        ["py", "-c", f"conf = {{'password': '{M}', 'user': 'u'}}"],
    ),
]


@pytest.mark.parametrize(("argv", "expected"), ARGV_CASES)
def test_scrub_argv_table(argv: list[str], expected: list[str]) -> None:
    assert scrub_argv(argv) == expected


def test_pem_block_in_cmdline() -> None:
    text = "app --cert -----BEGIN CERTIFICATE----- MIIB abc -----END CERTIFICATE----- --port 1"
    assert scrub_cmdline(text) == f"app --cert -----BEGIN CERTIFICATE-----{M}-----END CERTIFICATE----- --port 1"


@pytest.mark.parametrize(
    ("key", "secret"),
    [
        ("db-password", True),
        ("API_KEY", True),
        ("tokens-file", False),
        ("passive", False),
        ("pass", True),
        ("pwdfile", False),
        ("tokenizer", True),
        ("user", False),
    ],
)
def test_is_secret_key(key: str, secret: bool) -> None:
    assert is_secret_key(key) is secret


def test_cache_returns_fresh_lists() -> None:
    argv = ["app", "--token", "x"]
    first = scrub_argv(argv)
    first.append("mutated")
    assert scrub_argv(argv) == ["app", "--token", M]
    assert argv == ["app", "--token", "x"]


def test_bad_input_is_a_clear_error() -> None:
    with pytest.raises(TypeError, match="expects str"):
        scrub_cmdline(None)  # type: ignore[arg-type]


_word = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12)


@settings(max_examples=150, deadline=None)
@given(st.lists(_word, max_size=8), st.text(alphabet="abcXYZ019", min_size=4, max_size=10))
def test_argv_length_kept_and_secret_gone(argv: list[str], secret: str) -> None:
    full = [*argv, "--password", secret, f"--api-key={secret}"]
    out = scrub_argv(full)
    assert len(out) == len(full)
    assert out[-2:] == [M, f"--api-key={M}"]
    assert scrub_argv(out) == out  # idempotent


# Every secret shape found passing the scrubber, plus the command-line shapes of Datadog's sensitive words and
# gitleaks' rules: (argv in, argv out). The collector hands argv lists; the same text joined by " " through
# scrub_cmdline must hide the secret as well (checked below).
GH = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
PEM_SPLIT = ["-----BEGIN", "RSA", "PRIVATE", "KEY-----", "MIIEpAIBAAKCAQEA7", "q1w2e3", "-----END", "RSA", "PRIVATE",
             "KEY-----"]  # fmt: skip
SHAPE_CASES: list[tuple[str, list[str], list[str]]] = [
    ("curl -u", ["curl", "-u", "alice:PASS", "https://h"], ["curl", "-u", f"alice:{M}", "https://h"]),
    ("curl --user", ["curl", "--user", "alice:PASS", "h"], ["curl", "--user", f"alice:{M}", "h"]),
    ("curl --proxy-user", ["/usr/bin/curl", "--proxy-user", "bob:PW", "h"], ["/usr/bin/curl", "--proxy-user", f"bob:{M}", "h"]),
    ("redis-cli -a", ["redis-cli", "-h", "db", "-a", "PASS", "ping"], ["redis-cli", "-h", "db", "-a", M, "ping"]),
    ("gpg --passphrase", ["gpg", "--batch", "--passphrase", "PASS", "-d", "f"], ["gpg", "--batch", "--passphrase", M, "-d", "f"]),
    ("PRIVATE-TOKEN header", ["curl", "-H", "PRIVATE-TOKEN: V1", "h"], ["curl", "-H", f"PRIVATE-TOKEN: {M}", "h"]),
    ("X-API-Key header", ["curl", "-H", "X-API-Key:V1", "h"], ["curl", "-H", f"X-API-Key:{M}", "h"]),
    ("Proxy-Authorization", ["curl", "-H", "Proxy-Authorization: Basic dXNlcjpw"], ["curl", "-H", f"Proxy-Authorization: Basic {M}"]),
    ("Cookie, several", ["curl", "-H", "Cookie: a=1; sid=2"], ["curl", "-H", f"Cookie: {M}"]),
    ("X-Vault-Token", ["curl", "--header", "X-Vault-Token: s.abc"], ["curl", "--header", f"X-Vault-Token: {M}"]),
    ("header split", ["curl", "-H", "PRIVATE-TOKEN:", "V1", "h"], ["curl", "-H", "PRIVATE-TOKEN:", M, "h"]),
    ("header split scheme", ["curl", "-H", "Authorization:", "Basic", "V1"], ["curl", "-H", "Authorization:", "Basic", M]),
    ("sig=", ["curl", "https://b.blob.core.windows.net/c/x?sv=2022&sig=AbC%2Bd&se=1"],
     ["curl", f"https://b.blob.core.windows.net/c/x?sv=2022&sig={M}&se=1"]),
    ("X-Amz-Signature", ["wget", "https://s3/x?X-Amz-Credential=AK%2F2024&X-Amz-Signature=ab12&X-Amz-Expires=60"],
     ["wget", f"https://s3/x?X-Amz-Credential={M}&X-Amz-Signature={M}&X-Amz-Expires=60"]),
    ("X-Amz-Security-Token", ["curl", "https://s3/x?X-Amz-Security-Token=FwoG"], ["curl", f"https://s3/x?X-Amz-Security-Token={M}"]),
    ("query key/secret", ["curl", "https://h/a?key=K1&client_secret=S1&q=1"], ["curl", f"https://h/a?key={M}&client_secret={M}&q=1"]),
    ("JSON number", ["app", "--conf", '{"token": 12345678901, "port": 80}'], ["app", "--conf", f'{{"token": {M}, "port": 80}}']),
    ("YAML-ish --set", ["helm", "install", "x", "--set", "token: V1"], ["helm", "install", "x", "--set", f"token: {M}"]),
    ("helm --set dotted", ["helm", "--set", "auth.password=V1"], ["helm", "--set", f"auth.password={M}"]),
    ("@ in password", ["git", "clone", "https://u:p@ss@h.example/x.git"], ["git", "clone", f"https://u:{M}@h.example/x.git"]),
    ("redis URL no user", ["app", "redis://:p@w@cache:6379/0"], ["app", f"redis://:{M}@cache:6379/0"]),
    ("nmcli password", ["nmcli", "dev", "wifi", "connect", "Home", "password", "V1"],
     ["nmcli", "dev", "wifi", "connect", "Home", "password", M]),
    ("nmcli psk", ["nmcli", "con", "modify", "x", "wifi-sec.psk", "V1"], ["nmcli", "con", "modify", "x", "wifi-sec.psk", M]),
    ("wpa_passphrase", ["wpa_passphrase", "Home", "V1"], ["wpa_passphrase", "Home", M]),
    ("xauth cookie", ["xauth", "-f", "/tmp/xa", "add", ":0", "MIT-MAGIC-COOKIE-1", "0123abcd"], ["xauth", "-f", "/tmp/xa", "add", ":0", "MIT-MAGIC-COOKIE-1", M]),
    ("aws configure set", ["aws", "configure", "set", "aws_secret_access_key", "V1"],
     ["aws", "configure", "set", "aws_secret_access_key", M]),
    ("git config token", ["git", "config", "--global", "github.token", "V1"], ["git", "config", "--global", "github.token", M]),
    ("GitHub ghp_", ["gh-sync", GH], ["gh-sync", M]),
    ("GitHub in URL", ["git", "clone", f"https://{GH}@github.com/x"], ["git", "clone", f"https://{M}@github.com/x"]),
    ("GitHub pat", ["x", "github_pat_11ABCDEFG0123456789_abcdefghijklmnop"], ["x", M]),
    ("GitLab glpat", ["x", "glpat-AbCdEf0123456789xYzW"], ["x", M]),
    ("Slack xoxb", ["bot", "xoxb-1234567890-0987654321-AbCdEfGh"], ["bot", M]),
    ("AWS key id", ["sync", "AKIAIOSFODNN7EXAMPLE"], ["sync", M]),
    ("Stripe live", ["pay", "sk_live_4eC39HqLyjWDarjtT1zdp7dc"], ["pay", M]),
    ("Google API key", ["maps", "AIzaSyA-1234567890abcdefghijklmnopqrstu"], ["maps", M]),
    ("OpenAI", ["ai", "sk-proj-AbCdEfGhIjKlMnOpQrStUv12"], ["ai", M]),
    ("npm", ["npm", "publish", "npm_" + "a" * 18 + "B" * 18], ["npm", "publish", M]),
    ("Anthropic", ["agent", "--model", "x", "sk-ant-api03-" + "A1b2" * 10], ["agent", "--model", "x", M]),
    ("SendGrid", ["mailer", "SG." + "a" * 22 + "." + "B" * 43], ["mailer", M]),
    ("Hugging Face", ["dl", "hf_" + "AbCd" * 8 + "Ef"], ["dl", M]),
    ("Vault", ["app", "hvs.CAESIJ" + "x" * 30], ["app", M]),
    ("Databricks", ["job", "dapi" + "0123456789abcdef" * 2], ["job", M]),
    ("Slack in env", ["env", "SLACK=xoxp-1234567890-abcdefghij", "bot"], ["env", f"SLACK={M}", "bot"]),
    ("JWT positional", ["client", JWT], ["client", M]),
    ("JWT inside", ["client", f"--header=x-jwt-assertion:{JWT}"], ["client", f"--header=x-jwt-assertion:{M}"]),
    ("--key", ["app", "--key", "V1"], ["app", "--key", M]),
    ("--key=", ["app", "--key=V1"], ["app", f"--key={M}"]),
    ("docker login -p", ["docker", "login", "-u", "me", "-p", "V1", "reg"], ["docker", "login", "-u", "me", "-p", M, "reg"]),
    ("ldapsearch -w", ["ldapsearch", "-D", "cn=admin", "-w", "V1"], ["ldapsearch", "-D", "cn=admin", "-w", M]),
    ("mongosh -p", ["mongosh", "-u", "root", "-p", "V1"], ["mongosh", "-u", "root", "-p", M]),
    ("sqlcmd -P", ["sqlcmd", "-S", "db", "-U", "sa", "-P", "V1"], ["sqlcmd", "-S", "db", "-U", "sa", "-P", M]),
    ("smbclient -U", ["smbclient", "//s/x", "-U", "bob%V1"], ["smbclient", "//s/x", "-U", f"bob%{M}"]),
    ("keytool", ["keytool", "-storepass", "V1", "-keypass", "V2"], ["keytool", "-storepass", M, "-keypass", M]),
    ("PEM split", ["app", "--key", *PEM_SPLIT, "--port", "1"],
     ["app", "--key", "-----BEGIN", "RSA", "PRIVATE", "KEY-----", M, M, "-----END", "RSA", "PRIVATE", "KEY-----",
      "--port", "1"]),
    ("PEM split, label one arg", ["app", "-----BEGIN PRIVATE KEY-----", "MIIE", "abc", "-----END PRIVATE KEY-----"],
     ["app", "-----BEGIN PRIVATE KEY-----", M, M, "-----END PRIVATE KEY-----"]),
    ("PEM split, truncated", ["app", "-----BEGIN OPENSSH PRIVATE KEY-----", "b3Blbn", "NzaC1"],
     ["app", "-----BEGIN OPENSSH PRIVATE KEY-----", M, M]),
    ("env AWS secret", ["env", "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG", "app"], ["env", f"AWS_SECRET_ACCESS_KEY={M}", "app"]),
    ("Datadog words", ["app", "--mysql_pwd", "a", "--stripetoken", "b", "--credentials", "c"],
     ["app", "--mysql_pwd", M, "--stripetoken", M, "--credentials", M]),
]  # fmt: skip


@pytest.mark.parametrize(("argv", "expected"), [c[1:] for c in SHAPE_CASES], ids=[c[0] for c in SHAPE_CASES])
def test_secret_shapes_argv(argv: list[str], expected: list[str]) -> None:
    assert scrub_argv(argv) == expected


@pytest.mark.parametrize(("argv", "expected"), [c[1:] for c in SHAPE_CASES], ids=[c[0] for c in SHAPE_CASES])
def test_secret_shapes_joined_text(argv: list[str], expected: list[str]) -> None:
    """The same command line as one space-joined text (seed dumps, re-scrub on load) hides every secret too
    (a text has no argv boundaries: a masked value runs to the next blank, so "Cookie: a=1; b=2" is left out)."""
    out = scrub_cmdline(" ".join(argv))
    assert M in out
    for arg, exp in zip(argv, expected, strict=True):
        if arg != exp and "; " not in arg:
            for part in re.split(r"[\s:=&%@;,{}\"']+", arg):
                if part and part not in exp:
                    assert not re.search(rf"(?<!\w){re.escape(part)}(?!\w)", out), (part, out)


# Innocent command lines that must stay exactly as they are (false positives cost useful information).
INNOCENT: list[list[str]] = [
    ["ps", "-u", "root", "-o", "pid,rss"],
    ["sort", "-u", "names.txt"],
    ["ssh", "-p", "2222", "host"],
    ["docker", "run", "-p", "8080:80", "-u", "1000:1000", "nginx"],
    ["docker", "run", "-v", "data:/var/lib/data", "-e", "MODE=prod", "img"],
    ["tar", "-a", "-cf", "x.tar.zst", "dir"],
    ["redis-server", "/etc/redis/redis.conf", "--port", "6379"],
    ["curl", "-u", "alice", "https://h/x"],
    ["curl", "-sS", "https://example.com/a@b"],
    ["curl", "-H", "Accept: application/json", "-H", "Content-Type: text/plain", "https://h"],
    ["git", "log", "--author=alice", "--since=2.weeks"],
    ["python3", "secret_santa.py", "3"],
    ["python3", "-m", "tokenize", "x.py"],
    ["kubectl", "get", "secret", "web-tls", "-n", "prod"],
    ["openssl", "x509", "-in", "/etc/ssl/cert.pem", "-noout"],
    ["openssl", "req", "-key", "/etc/ssl/private/k.pem", "-new"],
    ["/usr/lib/xorg/Xorg", "vt1", "-displayfd", "3", "-auth", "/run/user/1000/gdm/Xauthority", "-nolisten", "tcp"],
    ["kube-apiserver", "--service-account-key-file=/etc/k/sa.pub", "--tls-private-key-file=/etc/k/apiserver.key"],
    ["/usr/bin/dockerd", "-H", "fd://", "--containerd=/run/containerd/containerd.sock"],
    ["openvpn", "--config", "client.ovpn", "--auth-user-pass", "/etc/openvpn/pass.txt"],
    ["sshd:", "alice@pts/0"],
    ["xauth", "list", ":0"],
    ["postgres:", "app", "appdb", "10.0.0.5(5432)", "idle"],
    ["nginx:", "master", "process", "/usr/sbin/nginx", "-g", "daemon on; master_process on;"],
    ["dbus-daemon", "--session", "--address=systemd:", "--nofork", "--syslog-only"],
    ["python3", "eyes_tracker.py", "--eyes.left", "1"],
    ["java", "-Xmx2g", "-Dspring.profiles.active=prod", "-jar", "app.jar"],
    ["nginx:", "worker", "process"],
    ["postgres:", "checkpointer"],
    ["node", "/srv/app/server.js", "--port=3000", "--host", "0.0.0.0"],
    ["gunicorn", "app:create_app()", "-w", "4", "-b", "127.0.0.1:8000"],
    ["uvicorn", "main:app", "--reload"],
    ["systemd-journald"],
    ["/usr/lib/firefox/firefox", "-contentproc", "-childID", "4", "-isForBrowser", "tab"],
    ["rsync", "-avz", "src/", "user@host:/backup/"],
    ["scp", "file", "user@host:/tmp/"],
    ["ssh", "-i", "/home/a/.ssh/id_ed25519", "git@github.com"],
    ["grep", "-rn", "token", "src/"],
    ["make", "-j4", "KEY_DIR=/etc/keys"],
    ["sleep", "3600"],
    ["bash", "-c", "echo hello && sleep 1"],
    ["mysql", "-p", "shop"],
    ["psql", "-h", "db", "-U", "app", "shop"],
    ["chromium", "--type=renderer", "--lang=en-US", "--field-trial-handle=1,i,123"],
    ["python3", "-c", "print({'a': 1, 'b': 'x'})"],
    ["ffmpeg", "-i", "in.mp4", "-c:v", "libx264", "out.mp4"],
]


@pytest.mark.parametrize("argv", INNOCENT, ids=[" ".join(a)[:40] for a in INNOCENT])
def test_innocent_command_lines_unchanged(argv: list[str]) -> None:
    assert scrub_argv(argv) == argv
    assert scrub_cmdline(" ".join(argv)) == " ".join(argv)


def test_collector_scrubs_a_pem_split_over_argv(tmp_path) -> None:
    """The collector's sampler scrubs the whole argv list: a key split over arguments never reaches a sample."""
    from collector.sampler import Sampler
    from tests.fakeproc import FakeProcess, FakeProcFS

    fs = FakeProcFS(tmp_path / "proc")
    fs.add(FakeProcess(100, "app", ["app", "--key", *PEM_SPLIT, "--token", "T0P", GH], uid=0, start_ticks=100))
    frame = Sampler(proc_root=str(fs.root), smaps="off", clk_tck=100, host="h").sample().procs
    cmd = frame["cmdline"][list(frame["pid"]).index(100)]
    for secret in ("MIIEpAIBAAKCAQEA7", "q1w2e3", "T0P", GH):
        assert secret not in cmd
