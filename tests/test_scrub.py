"""Table tests for memlib.scrub: secrets masked, harmless text kept, argv boundaries kept."""

from __future__ import annotations

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
