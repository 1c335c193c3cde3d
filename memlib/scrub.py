"""Mask secrets in command lines before they are written or shown (design.md §7).

One scrubber serves the collector (argv lists, before writing) and the loader (seed dumps whose CMD is one
space-joined string). Both return the input with secret *values* replaced by ``MASK``; everything else is kept.
The rules follow Datadog's process scrubber (sensitive option words) and gitleaks' rule table (token shapes).

Rules
-----
Sensitive option names (``SECRET_WORDS``, case-insensitive, ``*`` is a wildcard, ``-`` and ``_`` are equivalent
so ``--api-key`` matches ``*api_key*``) are recognised as

* ``--word=value``, ``-word=value``, ``word=value`` (whole argument, or inside one: ``sh -c "X_TOKEN=v cmd"``,
  URL queries ``?token=v&sig=v``, option lists ``-o user=a,password=b``) -> the value is masked up to the next
  whitespace, ``&``, ``,`` or quote;
* ``--word value`` and ``-word value`` -> the next argument is masked, unless it starts with ``--`` (then the
  option is taken as a flag, e.g. ``--password-prompt --verbose``);
* ``Word: value`` (HTTP headers such as ``PRIVATE-TOKEN: v``, ``X-API-Key: v``, ``Authorization: Basic v``, and
  YAML-ish settings such as ``--set 'token: v'``) -> the value is masked (an auth scheme word is kept);
* a bare configuration key with ``_`` or ``.`` (``aws configure set aws_secret_access_key V``,
  ``git config github.token V``) -> the next argument is masked unless it is a path.

Value patterns masked wherever they occur: URL userinfo ``scheme://user:PASS@host`` (the last ``@`` before the
host ends the password, so ``p@ss`` is masked whole); ``Bearer <token>``; ``"word": value`` pairs (JSON / Python
literals, quoted or bare numbers); PEM blocks ``-----BEGIN X-----...-----END X-----`` (body masked, also when
truncated or split over several argv elements); openssl ``pass:SECRET``; well-known token shapes (``TOKEN_SHAPES``:
GitHub, GitLab, Slack, AWS access key ids, Stripe, Google, OpenAI, Anthropic, npm, PyPI, SendGrid, Hugging Face,
HashiCorp Vault, DigitalOcean, Shopify, Databricks, Grafana, age keys, JWTs) wherever they stand.

Program-specific options (``PROGRAM_OPTIONS``): ``curl -u/--user user:PASS``, ``redis-cli -a PASS``,
``mysql -pPASS``, ``sshpass -p PASS``, ``ldapsearch -w PASS``, ``mongosh -p PASS``, ``sqlcmd -P PASS``,
``smbclient -U user%PASS``, ``docker login -p PASS``, ``nmcli ... password PASS`` / ``wifi-sec.psk PASS``,
``wpa_passphrase SSID PASS``, ``xauth add DISPLAY PROTO COOKIE``.

Decisions (tested in tests/test_scrub.py):

* Options that name *where* a secret lives rather than the secret — the name ends in ``file``, ``path``, ``dir``,
  ``fd``, ``jar`` or ``stdin`` (``--tokens-file``, ``--password-file``, ``--passphrase-fd``) — are not masked: a
  path is not a secret and hiding it hides useful information. ``--key`` / ``-auth`` followed by a path is kept.
* Negated flags (``--no-password``, ``--no_auth_token``) take no value: the next argument is kept.
* Exact words do not match longer names: ``--passive``, ``--compass``, ``--bypass`` stay visible (``pass`` is exact).
* Wildcard words over-match on purpose (``--tokenizer bert`` is masked by ``*token*``): a hidden harmless value
  costs less than a shown secret.
* Short options are program-specific: ``-u``, ``-a``, ``-p`` of other programs (``ps -u root``, ``ssh -p 22``,
  ``docker run -p 80:80``) are kept.
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
    # Datadog agent's default sensitive words
    "*password*",
    "*passwd*",
    "*mysql_pwd*",
    "*access_token*",
    "*auth_token*",
    "*api_key*",
    "*apikey*",
    "*secret*",
    "*credential*",
    "stripetoken",
    # more option names that carry secrets
    "pass",
    "pswd",
    "*pwd*",
    "*token*",
    "*passphrase*",
    "*storepass",
    "*keypass",
    "jwt",
    "key",
    "auth",
    "sig",
    "*signature",
    "*private_key*",
    "*access_key*",
    "*secret_key*",
    "*signing_key*",
    "*encryption_key*",
    "*master_key*",
    "*subscription_key*",
    "*authorization*",
    "*cookie*",
)

# names that say where the secret is (a path, a descriptor, stdin), not the secret itself
_SOURCE_SUFFIXES = ("file", "path", "dir", "fd", "stdin", "jar")

# well-known secret shapes (gitleaks' rule table), masked wherever they stand
TOKEN_SHAPES: tuple[str, ...] = (
    r"gh[pousr]_[A-Za-z0-9]{20,}",  # GitHub tokens
    r"github_pat_\w{20,}",  # GitHub fine-grained token
    r"gl(?:pat|ptt|dt|rt|soat|cbt|imt|agent|oas|ft)-[\w\-]{20,}",  # GitLab tokens
    r"GR1348941[\w\-]{20,}",  # GitLab runner registration token
    r"xox[abeoprs]-[A-Za-z0-9\-]{10,}",  # Slack tokens
    r"xapp-\d-[A-Za-z0-9\-]{10,}",  # Slack app token
    r"(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16}",  # AWS access key id
    r"(?:sk|rk)_(?:test|live|prod)_[A-Za-z0-9]{10,}",  # Stripe
    r"AIza[\w\-]{35}",  # Google API key
    r"ya29\.[\w\-]{20,}",  # Google OAuth access token
    r"sk-(?:proj|svcacct|admin)-[\w\-]{20,}",  # OpenAI project / service keys
    r"sk-[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20}",  # OpenAI legacy key
    r"sk-ant-(?:api|admin)\d\d-[\w\-]{20,}",  # Anthropic
    r"npm_[A-Za-z0-9]{36}",  # npm
    r"pypi-AgEIcHlwaS5vcmc[\w\-]{50,}",  # PyPI upload token
    r"SG\.[\w\-]{22}\.[\w\-]{43}",  # SendGrid
    r"hf_[A-Za-z]{34}",  # Hugging Face
    r"hv[sb]\.[\w\-]{24,}",  # HashiCorp Vault
    r"do[opr]_v1_[a-f0-9]{64}",  # DigitalOcean
    r"shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}",  # Shopify
    r"dapi[a-f0-9]{32}(?:-\d)?",  # Databricks
    r"gl(?:c|sa)_[A-Za-z0-9+/_]{32,}",  # Grafana
    r"AGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}",  # age
    r"eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]*",  # JWT (header.payload.signature)
)

_SECRET_KEY_RE = re.compile(
    "|".join("(?:" + ".*".join(re.escape(p) for p in w.split("*")) + ")" for w in SECRET_WORDS),
    re.IGNORECASE,
)
_TOKEN_SHAPE_RE = re.compile(r"(?<![A-Za-z0-9])(?:" + "|".join(TOKEN_SHAPES) + r")(?![A-Za-z0-9])")

_OPT_RE = re.compile(r"(-{1,2})([A-Za-z_][\w.\-]*)")  # fullmatch: "--password", "-pass"
_ASSIGN_RE = re.compile(r"(-{0,2})([A-Za-z_][\w.\-]*)=(.*)", re.DOTALL)  # fullmatch: "--password=x"
# key=value inside a longer text; the value runs to whitespace, '&', ',' or a quote
_INNER_KV_RE = re.compile(r"(?<![\w.\-])(-{0,2})([A-Za-z_][\w.\-]*)=([^\s&,;'\"]*)")
# scheme://user:PASS@host; the password runs to the last '@' before the host
_URL_USERINFO_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*://[^/\s:@]*):([^/\s?#]*)@")
_BEARER_RE = re.compile(r"\b(Bearer)(\s+)[^\s'\"]+", re.IGNORECASE)
_SCHEME_WORDS = ("basic", "bearer", "digest", "token", "negotiate")
# Name: value (a header or a YAML-ish setting) inside a text; masked when Name is a secret key
_HEADER_RE = re.compile(
    r"(?<![\w.\-])([A-Za-z][\w.\-]*)(\s*:\s+|:)(?:(basic|bearer|digest|token|negotiate)(\s+))?([^\s'\",}]+)",
    re.IGNORECASE,
)
_HEADER_WHOLE_RE = re.compile(r"([A-Za-z][\w.\-]*)(\s*:\s*)(.*)", re.DOTALL)  # fullmatch: one argv element
_HEADER_NAME_RE = re.compile(r"([A-Za-z][\w.\-]*):")  # fullmatch: "PRIVATE-TOKEN:" as its own argument
_PEM_RE = re.compile(r"(-----BEGIN[ \x00]([A-Z0-9 \x00]+)-----)(.*?)(-----END[ \x00]\2-----|$)", re.DOTALL)
# "key": "value" / 'key': 'value' / "key": 123 (JSON or Python-literal options such as --env '{"TOKEN": "..."}')
_QUOTED_PAIR_RE = re.compile(
    r"""(["'])([A-Za-z_][\w.\-]*)\1(\s*:\s*)(?:(["'])((?:\\.|(?!\4).)*)\4|([^\s,}\]"']+))""", re.DOTALL
)
_OPENSSL_PASS_RE = re.compile(r"\b(pass:)(\S+)")
_SPACE_SPLIT_RE = re.compile(r"(\s+)")
_HAS_SPACE_RE = re.compile(r"\s")
_CONFIG_KEY_RE = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_][\w\-]*)*")  # aws_secret_access_key, github.token
_PATH_LIKE = ("/", "./", "../", "~/")
_PATH_OK_WORDS = frozenset({"key", "auth"})  # -key /etc/ssl/k.pem, Xorg -auth /run/user/1000/gdm/Xauthority
_SEP = "\x00"  # argv separator while looking for PEM blocks across arguments (never inside an argv element)

# program basename pattern -> (options whose next argument is a secret, how to mask it)
#   "next": the whole next argument; "userinfo": after the first ':' (curl user:pass); "percent": after '%'
_PROGRAMS: tuple[tuple[re.Pattern[str], dict[str, str]], ...] = (
    (re.compile(r"curl"), {"-u": "userinfo", "--user": "userinfo", "-U": "userinfo", "--proxy-user": "userinfo"}),
    (re.compile(r"redis-cli|valkey-cli|keydb-cli"), {"-a": "next"}),
    (re.compile(r"sshpass"), {"-p": "next"}),
    (re.compile(r"ldap\w*"), {"-w": "next"}),
    (re.compile(r"mongo\w*"), {"-p": "next"}),
    (re.compile(r"sqlcmd|bcp"), {"-P": "next"}),
    (re.compile(r"smbclient|rpcclient|smbmap|net"), {"-U": "percent", "--user": "percent"}),
    (re.compile(r"(?:mysql|mariadb)[\w\-]*"), {}),
    (re.compile(r"docker|podman|nerdctl|buildah|skopeo|helm|oras|crane"), {"-p": "login"}),
    (re.compile(r"nmcli"), {}),
    (re.compile(r"wpa_passphrase"), {}),
    (re.compile(r"xauth"), {}),
)
_ATTACHED_P = re.compile(r"-p(.+)", re.DOTALL)  # mysql -pSECRET, sshpass -pSECRET
_NMCLI_SECRET_RE = re.compile(r"(?:[\w\-]+\.)?(?:password|psk|passphrase|wep-key\d|pin|secrets)", re.IGNORECASE)


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
    # a harmless key may carry secrets further in: "x=https://u:p@h", "opts=a=1"
    return f"{dashes}{key}=" + _INNER_KV_RE.sub(_inner_kv, value)


def _header(match: re.Match[str]) -> str:
    name, sep, scheme, space, _value = match.groups()
    if not is_secret_key(name) or (sep == ":" and _value.startswith("/")):
        return match.group(0)
    return f"{name}{sep}{scheme}{space}{MASK}" if scheme else f"{name}{sep}{MASK}"


def _quoted_pair(match: re.Match[str]) -> str:
    q, key, sep, vq, _value, bare = match.groups()
    if not is_secret_key(key):
        return match.group(0)
    return f"{q}{key}{q}{sep}{MASK}" if bare is not None else f"{q}{key}{q}{sep}{vq}{MASK}{vq}"


def _pem(match: re.Match[str]) -> str:
    begin, _label, body, end = match.groups()
    # one MASK per argv element the body touches, so scrub_argv keeps the number of elements
    return begin + _SEP.join(MASK if part.strip() else part for part in body.split(_SEP)) + end


def _scrub_values(text: str) -> str:
    """Apply the value patterns (PEM, URL userinfo, token shapes, headers, pairs, pass:, key=value) to one string."""
    if "-----BEGIN" in text:
        text = _PEM_RE.sub(_pem, text)
    if "://" in text:
        text = _URL_USERINFO_RE.sub(rf"\1:{MASK}@", text)
    text = _TOKEN_SHAPE_RE.sub(MASK, text)
    if ":" in text:
        if '"' in text or "'" in text:
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


def _program_of(token: str) -> dict[str, str] | None:
    name = _basename(token)
    for pattern, options in _PROGRAMS:
        if pattern.fullmatch(name):
            return options
    return None


def _mask_after(tok: str, sep: str) -> str:
    """user:pass -> user:MASK (sep ':'), user%pass -> user%MASK; unchanged without the separator."""
    head, found, _ = tok.partition(sep)
    return f"{head}{sep}{MASK}" if found else tok


def _whole_header(tok: str) -> str | None:
    """One argv element that is a whole 'Name: value' with a secret Name -> masked value (scheme kept), else None."""
    m = _HEADER_WHOLE_RE.fullmatch(tok)
    if m is None or not m.group(3) or not is_secret_key(m.group(1)) or m.group(3).startswith("//"):
        return None
    name, sep, value = m.groups()
    scheme, space, _rest = value.partition(" ")
    if space and scheme.lower() in _SCHEME_WORDS:
        return f"{name}{sep}{scheme} {MASK}"
    return f"{name}{sep}{MASK}"


def _scrub_tokens(tokens: list[str]) -> list[str]:
    """Scrub a sequence of arguments (argv elements or whitespace-free words); same length out."""
    out: list[str] = []
    mask_next = ""  # "", "next", "userinfo", "percent", "path-ok" (mask unless a path), "scheme" (header value)
    program: dict[str, str] | None = None  # options of the last program-name argument seen
    program_name = ""
    positional = 0  # positional arguments after the program (wpa_passphrase SSID PASS)
    login = False  # "login" subcommand seen (docker login -p PASS), or "add" after xauth
    for tok in tokens:
        if mask_next:
            how, mask_next = mask_next, ""
            if how == "scheme" and tok.lower() in _SCHEME_WORDS:
                out.append(tok)
                mask_next = "next"
                continue
            if tok and not tok.startswith("--") and not (how == "path-ok" and tok.startswith(_PATH_LIKE)):
                if how == "userinfo":
                    out.append(_mask_after(tok, ":"))
                elif how == "percent":
                    out.append(_mask_after(tok, "%"))
                else:
                    out.append(MASK)
                continue
        options = _program_of(tok)
        if options is not None:
            program, program_name, positional, login = options, _basename(tok), 0, False
            out.append(tok)
            continue
        if tok == "login":
            login = True
        elif tok == "add" and program_name == "xauth":
            login, positional = True, 0
            out.append(tok)
            continue
        if program is not None:
            if program_name.startswith(("mysql", "mariadb", "sshpass")) and _ATTACHED_P.fullmatch(tok):
                out.append(f"-p{MASK}")
                continue
            how = program.get(tok)
            if how == "login":
                how = "next" if login else None
            if how:
                mask_next = how
                out.append(tok)
                continue
            if program_name == "nmcli" and _NMCLI_SECRET_RE.fullmatch(tok):
                mask_next = "next"
                out.append(tok)
                continue
            if program_name == "wpa_passphrase" and not tok.startswith("-"):
                positional += 1
                if positional == 2:
                    out.append(MASK)
                    continue
            if program_name == "xauth" and login:  # xauth add DISPLAY PROTOCOL HEXKEY: the key is the cookie
                positional += 1
                if positional == 3:
                    out.append(MASK)
                    continue
        opt = _OPT_RE.fullmatch(tok)
        if opt:
            if is_secret_key(opt.group(2)):
                mask_next = "path-ok" if opt.group(2).lower() in _PATH_OK_WORDS else "next"
            out.append(tok)
            continue
        if tok.lower() == "bearer":
            mask_next = "next"
            out.append(tok)
            continue
        header = _HEADER_NAME_RE.fullmatch(tok)
        if header and is_secret_key(header.group(1)):
            mask_next = "scheme"
            out.append(tok)
            continue
        assign = _ASSIGN_RE.fullmatch(tok)
        if assign and is_secret_key(assign.group(2)):
            out.append(f"{assign.group(1)}{assign.group(2)}={MASK}")
            continue
        whole = _whole_header(tok)
        if whole is not None:
            out.append(whole)
            continue
        if _CONFIG_KEY_RE.fullmatch(tok) and ("_" in tok or "." in tok) and is_secret_key(tok.rsplit(".", 1)[-1]):
            mask_next = "path-ok"
            out.append(tok)
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
    if any("-----BEGIN" in a for a in argv):  # a PEM block may span several elements: mask it on the joined text
        joined = _PEM_RE.sub(_pem, _SEP.join(argv))
        argv = tuple(joined.split(_SEP))
    return tuple(_scrub_tokens(list(argv)))


def scrub_argv(argv: list[str]) -> list[str]:
    """argv list -> the same number of elements with secret values replaced by MASK."""
    return list(_scrub_argv_tuple(tuple(argv)))


def scrub_cmdline(text: str) -> str:
    """A space-joined command line (seed dumps) -> the same text with secret values replaced by MASK."""
    if not isinstance(text, str):
        raise TypeError(f"scrub_cmdline expects str, got {type(text).__name__}")
    return _scrub_text(text)
