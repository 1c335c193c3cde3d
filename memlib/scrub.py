"""Mask secrets in command lines before they are written or shown (design.md §7).

One scrubber serves the collector (argv lists, before writing) and the loader (seed dumps whose CMD is one
space-joined string). Both return the input with secret *values* replaced by ``MASK``; everything else is kept.

Rules
-----
Sensitive option names (``SECRET_WORDS``, case-insensitive, ``*`` is a wildcard, ``-`` and ``_`` are equivalent
so ``--api-key`` matches ``*api_key*``) are recognised as

* ``--word=value``, ``-word=value``, ``word=value`` (whole argument, or inside one: ``sh -c "X_TOKEN=v cmd"``,
  URL queries ``?token=v&x=1``, option lists ``-o user=a,password=b``) -> the value is masked up to the next
  whitespace, ``&`` or quote;
* ``--word value`` and ``-word value`` -> the next argument is masked, unless it starts with ``--`` (then the
  option is taken as a flag, e.g. ``--password-prompt --verbose``).

Value patterns masked wherever they occur: URL userinfo ``scheme://user:PASS@host`` -> ``scheme://user:********@host``;
``Bearer <token>`` (also as two arguments); ``"word": "value"`` pairs (JSON / Python literals passed as
options); ``Authorization:`` / ``Cookie:`` header values; PEM blocks
``-----BEGIN X-----...-----END X-----`` (body masked, also when truncated); openssl ``pass:SECRET``;
``mysql``/``mariadb*`` ``-pSECRET``; ``sshpass -p SECRET`` / ``-pSECRET``.

Decisions (tested in tests/test_scrub.py):

* Options that name *where* a secret lives rather than the secret — the name ends in ``file``, ``path``, ``dir``,
  ``fd`` or ``stdin`` (``--tokens-file``, ``--password-file``, ``--password-stdin``, ``--pwdfile``) — are not masked:
  a path is not a secret and hiding it hides useful information.
* Negated flags (``--no-password``, ``--no_auth_token``) take no value: the next argument is kept.
* Exact words do not match longer names: ``--passive``, ``--compass``, ``--bypass`` stay visible (``pass`` is exact).
* Wildcard words over-match on purpose (``--tokenizer bert`` is masked by ``*token*``): a hidden harmless value
  costs less than a shown secret.
* ``scrub_cmdline`` cannot know argv boundaries: a value containing spaces after ``--password`` is masked only up to
  its first space. ``scrub_argv`` keeps argv boundaries (one element in, one element out) and masks whole elements.

Results are cached per argv tuple / text (the collector calls the scrubber for new processes only, the loader
once per distinct command line).
"""

from __future__ import annotations

import re
from functools import lru_cache

MASK = "********"

SECRET_WORDS: tuple[str, ...] = (
    "*password*",
    "*passwd*",
    "*mysql_pwd*",
    "*access_token*",
    "*auth_token*",
    "*api_key*",
    "*apikey*",
    "*secret*",
    "*credentials*",
    "stripetoken",
    "pass",
    "pswd",
    "*pwd*",
    "*token*",
    "jwt",
    "*private_key*",
    "*access_key*",
    "authorization",
    "cookie",
)

# names that say where the secret is (a path, a descriptor, stdin), not the secret itself
_SOURCE_SUFFIXES = ("file", "path", "dir", "fd", "stdin")

_SECRET_KEY_RE = re.compile(
    "|".join("(?:" + ".*".join(re.escape(p) for p in w.split("*")) + ")" for w in SECRET_WORDS),
    re.IGNORECASE,
)

_OPT_RE = re.compile(r"(-{1,2})([A-Za-z_][\w.\-]*)")  # fullmatch: "--password", "-pass"
_ASSIGN_RE = re.compile(r"(-{0,2})([A-Za-z_][\w.\-]*)=(.*)", re.DOTALL)  # fullmatch: "--password=x"
# key=value inside a longer text; the value runs to whitespace, '&' or a quote
_INNER_KV_RE = re.compile(r"(?<![\w.\-])(-{0,2})([A-Za-z_][\w.\-]*)=([^\s&'\"]*)")
_URL_USERINFO_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*://[^/\s:@]*):([^/\s@]*)@")
_BEARER_RE = re.compile(r"\b(Bearer)(\s+)[^\s'\"]+", re.IGNORECASE)
_HEADER_RE = re.compile(
    r"\b((?:proxy-)?authorization|(?:set-)?cookie|x-api-key|x-auth-token)(\s*:\s*)"
    r"(?:(basic|bearer|digest|token|negotiate)(\s+))?[^\s'\"]+",
    re.IGNORECASE,
)
_PEM_RE = re.compile(r"(-----BEGIN ([A-Z0-9 ]+)-----)(.*?)(-----END \2-----|$)", re.DOTALL)
# "key": "value" / 'key': 'value' (JSON or Python-literal options such as --env '{"API_TOKEN": "..."}')
_QUOTED_PAIR_RE = re.compile(r"""(["'])([A-Za-z_][\w.\-]*)\1(\s*:\s*)(["'])((?:\\.|(?!\4).)*)\4""", re.DOTALL)
_OPENSSL_PASS_RE = re.compile(r"\b(pass:)(\S+)")
_MYSQL_PROG_RE = re.compile(r"(?:mysql|mariadb)[\w\-]*", re.IGNORECASE)
_SSHPASS_PROG_RE = re.compile(r"sshpass", re.IGNORECASE)
_SHORT_P_RE = re.compile(r"-p(.+)", re.DOTALL)
_SPACE_SPLIT_RE = re.compile(r"(\s+)")
_HAS_SPACE_RE = re.compile(r"\s")


def is_secret_key(key: str) -> bool:
    """True if an option/variable name (without leading dashes) names a secret value."""
    norm = key.lower().replace("-", "_")
    if norm.endswith(_SOURCE_SUFFIXES) or norm.startswith("no_"):
        return False
    return _SECRET_KEY_RE.fullmatch(norm) is not None


def _inner_kv(match: re.Match[str]) -> str:
    dashes, key, value = match.groups()
    if is_secret_key(key):
        return f"{dashes}{key}={MASK}"
    # a harmless key may carry secrets further in: "-o user=a,password=b", "x=https://u:p@h"
    return f"{dashes}{key}=" + _INNER_KV_RE.sub(_inner_kv, value)


def _header(match: re.Match[str]) -> str:
    name, sep, scheme, space = match.groups()
    return f"{name}{sep}{scheme}{space}{MASK}" if scheme else f"{name}{sep}{MASK}"


def _quoted_pair(match: re.Match[str]) -> str:
    q, key, sep, vq, _value = match.groups()
    return f"{q}{key}{q}{sep}{vq}{MASK}{vq}" if is_secret_key(key) else match.group(0)


def _pem(match: re.Match[str]) -> str:
    begin, _label, _body, end = match.groups()
    return f"{begin}{MASK}{end}"


def _scrub_values(text: str) -> str:
    """Apply the value patterns (PEM, URL userinfo, Bearer, headers, pass:, inner key=value) to one string."""
    if "-----BEGIN " in text:
        text = _PEM_RE.sub(_pem, text)
    if "://" in text:
        text = _URL_USERINFO_RE.sub(rf"\1:{MASK}@", text)
    if ":" in text and ('"' in text or "'" in text):
        text = _QUOTED_PAIR_RE.sub(_quoted_pair, text)
    text = _HEADER_RE.sub(_header, text)
    text = _BEARER_RE.sub(rf"\1\2{MASK}", text)
    if "pass:" in text:
        text = _OPENSSL_PASS_RE.sub(rf"\1{MASK}", text)
    if "=" in text:
        text = _INNER_KV_RE.sub(_inner_kv, text)
    return text


def _basename(token: str) -> str:
    return token.rsplit("/", 1)[-1]


def _scrub_tokens(tokens: list[str]) -> list[str]:
    """Scrub a sequence of arguments (argv elements or whitespace-free words); same length out."""
    out: list[str] = []
    mask_next = False
    program: str | None = None  # "mysql" / "sshpass" once such a program appeared
    for tok in tokens:
        if mask_next:
            mask_next = False
            if tok and not tok.startswith("--"):
                out.append(MASK)
                continue
        name = _basename(tok)
        if _MYSQL_PROG_RE.fullmatch(name):
            program = "mysql"
        elif _SSHPASS_PROG_RE.fullmatch(name):
            program = "sshpass"
        if program is not None and _SHORT_P_RE.fullmatch(tok):
            out.append(f"-p{MASK}")
            continue
        opt = _OPT_RE.fullmatch(tok)
        if opt:
            if is_secret_key(opt.group(2)) or (program == "sshpass" and tok == "-p"):
                mask_next = True
            out.append(tok)
            continue
        if tok.lower() == "bearer":
            mask_next = True
            out.append(tok)
            continue
        assign = _ASSIGN_RE.fullmatch(tok)
        if assign and is_secret_key(assign.group(2)):
            out.append(f"{assign.group(1)}{assign.group(2)}={MASK}")
            continue
        tok = _scrub_values(tok)
        if _HAS_SPACE_RE.search(tok):
            tok = _scrub_text(tok)
        out.append(tok)
    return out


@lru_cache(maxsize=65536)
def _scrub_text(text: str) -> str:
    text = _scrub_values(text)
    parts = _SPACE_SPLIT_RE.split(text)  # words at even positions, whitespace runs at odd ones
    words = parts[0::2]
    parts[0::2] = _scrub_tokens(words)
    return "".join(parts)


@lru_cache(maxsize=65536)
def _scrub_argv_tuple(argv: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(_scrub_tokens(list(argv)))


def scrub_argv(argv: list[str]) -> list[str]:
    """argv list -> the same number of elements with secret values replaced by MASK."""
    return list(_scrub_argv_tuple(tuple(argv)))


def scrub_cmdline(text: str) -> str:
    """A space-joined command line (seed dumps) -> the same text with secret values replaced by MASK."""
    if not isinstance(text, str):
        raise TypeError(f"scrub_cmdline expects str, got {type(text).__name__}")
    return _scrub_text(text)
