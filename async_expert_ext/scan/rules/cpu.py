"""cpu-bound-in-async: computation known to be slow, run on the loop's thread.

Password hashing is slow *by design* (bcrypt, scrypt, PBKDF2 and Argon2 are
tuned to take tens to hundreds of milliseconds), and it is the most reported
CPU stall in FastAPI login endpoints (e.g. https://github.com/fastapi/fastapi/discussions/7711).
While it runs in a coroutine, no other request is served. Compression, image
processing and big-frame parsing are slow in proportion to their input, so
they are reported at lower confidence.

Reference: "Running Blocking Code",
https://docs.python.org/3/library/asyncio-dev.html#running-blocking-code.
"""
from __future__ import annotations

import ast
from typing import ClassVar

from ...model import Confidence, Section, Severity
from ..context import FileContext
from ..registry import Rule, rule
from .blocking import ASYNCIO_DEV, RUN_IN_EXECUTOR, TO_THREAD, call_name, is_awaited


class _CpuRule(Rule):
    kind = "cpu-bound-in-async"
    section = Section.ASYNC_PATTERNS
    calls: ClassVar[frozenset[str]] = frozenset()
    methods: ClassVar[dict[str, frozenset[str]]] = {}

    def matches(self, name: str) -> bool:
        if name in self.calls:
            return True
        typ, _, meth = name.rpartition(".")
        wanted = self.methods.get(typ)
        return wanted is not None and meth in wanted

    def visit_Call(self, node: ast.Call, ctx: FileContext) -> None:
        name = call_name(node, ctx)
        if not name or not self.matches(name) or is_awaited(node, ctx):
            return
        if ctx.in_coroutine:
            self.report(ctx, node, name=name)
        elif ctx.function is not None and self.confidence is not Confidence.LOW:
            # a sync helper that hashes passwords blocks its coroutine callers too
            ctx.note("blocking", (name, node.lineno, self.effective_severity.value, self.code))


@rule
class PasswordHashing(_CpuRule):
    code = "AEX130"
    name = "password-hashing"
    severity = Severity.WARNING
    confidence = Confidence.HIGH
    calls = frozenset(
        {
            "bcrypt.hashpw",
            "bcrypt.checkpw",
            "bcrypt.kdf",
            "hashlib.pbkdf2_hmac",
            "hashlib.scrypt",
            "passlib.hash.bcrypt.hash",
            "passlib.hash.bcrypt.verify",
            "passlib.hash.argon2.hash",
            "passlib.hash.argon2.verify",
            "passlib.hash.pbkdf2_sha256.hash",
            "passlib.hash.pbkdf2_sha256.verify",
            "werkzeug.security.generate_password_hash",
            "werkzeug.security.check_password_hash",
            "django.contrib.auth.hashers.make_password",
            "django.contrib.auth.hashers.check_password",
        }
    )
    methods = {
        "passlib.context.CryptContext": frozenset({"hash", "verify", "verify_and_update", "encrypt"}),
        "argon2.PasswordHasher": frozenset({"hash", "verify"}),
        "pwdlib.PasswordHash": frozenset({"hash", "verify", "verify_and_update"}),
    }
    message = "`{name}()` hashes a password on the event loop; it is slow by design (tens to hundreds of ms)"
    explanation = (
        "Password hashes are tuned to cost 50-500 ms of CPU. In a coroutine that time is taken from every "
        "other request the process is serving, so a burst of logins stalls the whole service."
    )
    fix = "Hash in a worker thread: `await asyncio.to_thread(pwd_context.verify, password, hashed)` (the hash releases the GIL)."
    fix_example = (
        "# before\n@app.post('/login')\nasync def login(form: Form):\n    ok = pwd_context.verify(form.password, user.hashed)\n\n"
        "# after\n@app.post('/login')\nasync def login(form: Form):\n"
        "    ok = await asyncio.to_thread(pwd_context.verify, form.password, user.hashed)"
    )
    references = (ASYNCIO_DEV, TO_THREAD, "https://fastapi.tiangolo.com/async/")


@rule
class HeavyComputation(_CpuRule):
    code = "AEX131"
    name = "heavy-computation"
    severity = Severity.INFO
    confidence = Confidence.LOW
    calls = frozenset(
        {
            "zlib.compress",
            "zlib.decompress",
            "gzip.compress",
            "gzip.decompress",
            "bz2.compress",
            "bz2.decompress",
            "lzma.compress",
            "lzma.decompress",
            "pandas.read_csv",
            "pandas.read_json",
            "pandas.read_parquet",
            "pandas.read_excel",
            "numpy.linalg.inv",
            "numpy.linalg.svd",
            "PIL.Image.open",
            "yaml.load",
            "yaml.safe_load",
            "xml.etree.ElementTree.fromstring",
            "xml.etree.ElementTree.parse",
        }
    )
    methods = {"PIL.Image.Image": frozenset({"resize", "thumbnail", "save", "convert", "rotate", "filter"})}
    message = "`{name}()` is CPU work proportional to its input, run on the event loop"
    explanation = (
        "Compression, parsing of big documents and numeric work hold the loop's thread for as long as they "
        "run; with large inputs that is long enough to stall every other task."
    )
    fix = "For large inputs, run it in a worker: `await asyncio.to_thread(...)` or `loop.run_in_executor(process_pool, ...)`."
    fix_example = (
        "# before\nasync def upload(blob: bytes):\n    packed = zlib.compress(blob, 9)\n\n"
        "# after\nasync def upload(blob: bytes):\n    packed = await asyncio.to_thread(zlib.compress, blob, 9)"
    )
    references = (ASYNCIO_DEV, TO_THREAD, RUN_IN_EXECUTOR)
