"""blocking-call-in-async: calls that block the event loop's thread.

A coroutine runs on the loop's only thread; while a call inside it blocks, no
other task, callback or I/O event runs ("Running Blocking Code" in the asyncio
docs: https://docs.python.org/3/library/asyncio-dev.html#running-blocking-code).

Every rule here matches a *resolved* callee name (imports, aliases and object
types are followed, see :mod:`async_expert_ext.scan.context`) against its table.
Inside a coroutine the call is reported; inside a sync function it is recorded
as a ``"blocking"`` linker note, so that :class:`BlockingHelper` can report a
coroutine's call into that function, with the call chain.

Quiet by design: calls inside a lambda or nested ``def`` (handed to
``to_thread``/``run_in_executor``), function references passed rather than
called, sync ``def`` endpoints (they run in the threadpool), and calls that are
directly awaited (then the callee is async).
"""
from __future__ import annotations

import ast
from typing import Any, ClassVar, Iterable

from ...model import Confidence, Finding, Section, Severity
from ..context import FileContext, dotted_name
from ..link import Deferred, Program
from ..registry import Rule, link_check, rule

ASYNCIO_DEV = "https://docs.python.org/3/library/asyncio-dev.html#running-blocking-code"
TO_THREAD = "https://docs.python.org/3/library/asyncio-task.html#asyncio.to_thread"
RUN_IN_EXECUTOR = "https://docs.python.org/3/library/asyncio-eventloop.html#asyncio.loop.run_in_executor"


def call_name(node: ast.Call, ctx: FileContext) -> str | None:
    """The resolved callee of ``node``, memoised on the node (all rules share it)."""
    try:
        return node._aex_callee  # type: ignore[attr-defined]
    except AttributeError:
        q = ctx.resolve(node.func)
        node._aex_callee = q  # type: ignore[attr-defined]
        return q


def is_awaited(node: ast.AST, ctx: FileContext) -> bool:
    """True when ``node`` is the operand of ``await`` or the context expression of
    ``async with`` / the iterable of ``async for`` (then the callee is async)."""
    parent = ctx.parent
    if isinstance(parent, ast.Await):
        return True
    if isinstance(parent, ast.withitem):
        grand = ctx.parents[-2] if len(ctx.parents) > 1 else None
        return isinstance(grand, ast.AsyncWith)
    if isinstance(parent, ast.AsyncFor) and parent.iter is node:
        return True
    return False


def _kw(node: ast.Call, name: str) -> ast.expr | None:
    for k in node.keywords:
        if k.arg == name:
            return k.value
    return None


def _is_false(expr: ast.expr | None) -> bool:
    return isinstance(expr, ast.Constant) and expr.value in (False, 0)


class BlockingRule(Rule):
    """Base of the table-driven blocking rules.

    Subclasses set ``calls`` (exact callee names) and ``methods`` (object type ->
    blocking method names, ``"*"`` for any method), and may refine :meth:`matches`.
    """

    kind = "blocking-call-in-async"
    severity = Severity.CRITICAL
    section = Section.CRITICAL_ISSUES
    references: ClassVar[tuple[str, ...]] = (ASYNCIO_DEV, TO_THREAD)
    calls: ClassVar[frozenset[str]] = frozenset()
    methods: ClassVar[dict[str, frozenset[str]]] = {}
    #: the phrase used in messages, e.g. "a synchronous HTTP request"
    what: ClassVar[str] = "a blocking call"

    def matches(self, name: str, node: ast.Call, ctx: FileContext) -> bool:
        if name in self.calls:
            return True
        typ, _, meth = name.rpartition(".")
        wanted = self.methods.get(typ)
        return wanted is not None and ("*" in wanted or meth in wanted)

    def visit_Call(self, node: ast.Call, ctx: FileContext) -> None:
        name = call_name(node, ctx)
        if name is None or not self.matches(name, node, ctx):
            return
        if is_awaited(node, ctx):
            return
        if ctx.in_coroutine:
            # one finding per rule and line: `conn.execute(...).fetchall()` is one call site
            seen = self.__dict__.setdefault("_lines", set())
            if node.lineno in seen:
                return
            seen.add(node.lineno)
            self.report(ctx, node, name=name, what=self.what)
        elif ctx.function is not None:
            ctx.note("blocking", (name, node.lineno, self.effective_severity.value, self.code))


@rule
class TimeSleep(BlockingRule):
    code = "AEX101"
    name = "time-sleep"
    what = "a thread sleep"
    calls = frozenset({"time.sleep"})
    message = "`{name}()` blocks the event loop; every other task waits for it"
    explanation = (
        "time.sleep() suspends the whole thread, and the event loop runs on that thread: no other "
        "coroutine, callback or I/O runs until it returns."
    )
    fix = "Use `await asyncio.sleep(...)`, which suspends only this coroutine."
    fix_example = (
        "# before\nasync def handler():\n    time.sleep(0.5)\n\n"
        "# after\nasync def handler():\n    await asyncio.sleep(0.5)"
    )
    references = (ASYNCIO_DEV, "https://docs.python.org/3/library/asyncio-task.html#asyncio.sleep")


_HTTP_VERBS = frozenset({"get", "post", "put", "patch", "delete", "head", "options", "request", "send", "stream"})


@rule
class SyncHttp(BlockingRule):
    code = "AEX102"
    name = "sync-http"
    what = "a synchronous HTTP request"
    calls = frozenset(
        {
            *(f"requests.{v}" for v in _HTTP_VERBS),
            *(f"httpx.{v}" for v in _HTTP_VERBS),
            "urllib.request.urlopen",
            "urllib.request.urlretrieve",
            "urllib.request.OpenerDirector.open",
            "urllib3.request",
            "http.client.HTTPConnection.request",
            "http.client.HTTPConnection.getresponse",
        }
    )
    methods = {
        "requests.Session": _HTTP_VERBS,
        "httpx.Client": _HTTP_VERBS,
        "urllib3.PoolManager": frozenset({"request", "urlopen", "request_encode_url", "request_encode_body"}),
        "http.client.HTTPConnection": frozenset({"request", "getresponse", "connect", "send"}),
    }
    message = "`{name}()` is a synchronous HTTP request inside a coroutine; the loop waits for the network"
    explanation = (
        "A synchronous HTTP client waits for the network on the loop's thread, so every other request "
        "and task stalls for the whole round trip."
    )
    fix = "Use an async client (`httpx.AsyncClient`, `aiohttp.ClientSession`) and await it, or `await asyncio.to_thread(...)`."
    fix_example = (
        "# before\nasync def fetch(url):\n    return requests.get(url, timeout=5).json()\n\n"
        "# after\nasync def fetch(client: httpx.AsyncClient, url):\n"
        "    resp = await client.get(url, timeout=5)\n    return resp.json()"
    )
    references = (ASYNCIO_DEV, "https://www.python-httpx.org/async/")


@rule
class SubprocessCall(BlockingRule):
    code = "AEX103"
    name = "sync-subprocess"
    what = "a synchronous subprocess"
    calls = frozenset(
        {
            "subprocess.run",
            "subprocess.call",
            "subprocess.check_call",
            "subprocess.check_output",
            "subprocess.getoutput",
            "subprocess.getstatusoutput",
            "subprocess.Popen.wait",
            "subprocess.Popen.communicate",
            "os.system",
            "os.popen",
            "os.wait",
            "os.waitpid",
            "os.wait3",
            "os.wait4",
            "os.waitid",
            *(f"os.spawn{s}" for s in ("l", "le", "lp", "lpe", "v", "ve", "vp", "vpe")),
            *(f"os.exec{s}" for s in ("l", "le", "lp", "lpe", "v", "ve", "vp", "vpe")),
        }
    )
    message = "`{name}()` runs a process synchronously inside a coroutine and blocks the loop until it ends"
    explanation = (
        "Waiting for a child process on the loop's thread freezes every other task for as long as the process runs."
    )
    fix = "Use `await asyncio.create_subprocess_exec(...)` and `await proc.communicate()`."
    fix_example = (
        "# before\nasync def build():\n    subprocess.run(['make'], check=True)\n\n"
        "# after\nasync def build():\n    proc = await asyncio.create_subprocess_exec('make')\n"
        "    if await proc.wait() != 0:\n        raise RuntimeError('make failed')"
    )
    references = (ASYNCIO_DEV, "https://docs.python.org/3/library/asyncio-subprocess.html")


_FILE_METHODS = frozenset({"read", "readline", "readlines", "write", "writelines", "flush", "seek", "truncate", "close", "readinto"})


@rule
class FileIO(BlockingRule):
    code = "AEX104"
    name = "sync-file-io"
    severity = Severity.WARNING
    confidence = Confidence.MEDIUM
    what = "synchronous file I/O"
    calls = frozenset(
        {
            "builtins.open",
            "io.open",
            "os.fdopen",
            "codecs.open",
            "gzip.open",
            "shutil.copy",
            "shutil.copy2",
            "shutil.copyfile",
            "shutil.copytree",
            "shutil.rmtree",
            "shutil.move",
            "os.read",
            "os.write",
            "os.fsync",
            "os.listdir",
            "os.scandir",
            "os.walk",
            "os.remove",
            "os.unlink",
            "os.rename",
            "os.makedirs",
            "os.mkdir",
            "os.rmdir",
            "os.stat",
            "json.load",
            "json.dump",
            "pickle.load",
            "pickle.dump",
            "glob.glob",
            "glob.iglob",
        }
    )
    methods = {
        "io.File": _FILE_METHODS,
        "pathlib.Path": frozenset(
            {
                "read_text",
                "read_bytes",
                "write_text",
                "write_bytes",
                "open",
                "glob",
                "rglob",
                "iterdir",
                "mkdir",
                "touch",
                "unlink",
                "rmdir",
                "rename",
                "replace",
                "stat",
                "exists",
                "is_file",
                "is_dir",
                "resolve",
            }
        ),
    }
    message = "`{name}()` does synchronous file I/O inside a coroutine"
    explanation = (
        "Disk I/O on the loop's thread blocks every other task while the OS reads or writes; on network "
        "file systems or big files that is milliseconds to seconds."
    )
    fix = "Move the file work to a thread: `await asyncio.to_thread(path.read_text)` (or use aiofiles/anyio.Path)."
    fix_example = (
        "# before\nasync def load(path):\n    with open(path) as fh:\n        return fh.read()\n\n"
        "# after\nasync def load(path):\n    return await asyncio.to_thread(Path(path).read_text)"
    )
    references = (ASYNCIO_DEV, TO_THREAD, "https://anyio.readthedocs.io/en/stable/fileio.html")

    def matches(self, name: str, node: ast.Call, ctx: FileContext) -> bool:
        if name == "pathlib.Path.open" or super().matches(name, node, ctx):
            return True
        return False


@rule
class OsPathQuery(BlockingRule):
    code = "AEX105"
    name = "os-path-query"
    severity = Severity.INFO
    confidence = Confidence.LOW
    what = "a filesystem query"
    calls = frozenset(
        {
            "os.path.exists",
            "os.path.isfile",
            "os.path.isdir",
            "os.path.islink",
            "os.path.getsize",
            "os.path.getmtime",
            "os.path.getatime",
            "os.path.getctime",
            "os.path.realpath",
            "os.path.samefile",
            "os.path.lexists",
            "os.access",
        }
    )
    message = "`{name}()` queries the filesystem synchronously inside a coroutine"
    explanation = (
        "A stat() call is usually fast, but on slow or network file systems it blocks the loop; in hot "
        "paths it adds up."
    )
    fix = "Fine once at start-up; in hot paths use `await asyncio.to_thread(os.path.exists, p)`."
    fix_example = (
        "# before\nasync def handler(p):\n    if os.path.exists(p): ...\n\n"
        "# after\nasync def handler(p):\n    if await asyncio.to_thread(os.path.exists, p): ..."
    )


@rule
class InputCall(BlockingRule):
    code = "AEX106"
    name = "input"
    what = "a wait for keyboard input"
    calls = frozenset({"builtins.input", "getpass.getpass", "sys.stdin.read", "sys.stdin.readline"})
    message = "`{name}()` waits for the keyboard inside a coroutine; the loop stops until someone types"
    explanation = "input() blocks the thread until a line is typed, so the event loop stops completely."
    fix = "Read stdin in a thread: `line = await asyncio.to_thread(input, 'prompt> ')`."
    fix_example = (
        "# before\nasync def repl():\n    cmd = input('> ')\n\n"
        "# after\nasync def repl():\n    cmd = await asyncio.to_thread(input, '> ')"
    )


def _expects_blocking_io_error(ctx: FileContext) -> bool:
    """True inside the body of a ``try`` that catches ``BlockingIOError``: the code
    drives a non-blocking socket by hand (it retries when the call would block)."""
    for anc in ctx.ancestors():
        if isinstance(anc, ast.Try):
            for h in anc.handlers:
                names = h.type.elts if isinstance(h.type, ast.Tuple) else [h.type] if h.type is not None else []
                if any(dotted_name(n) in ("BlockingIOError", "builtins.BlockingIOError") for n in names):
                    return True
    return False


@rule
class SyncSocket(BlockingRule):
    code = "AEX107"
    name = "sync-socket"
    what = "a blocking socket operation"
    calls = frozenset({"socket.create_connection", "socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyname_ex", "ssl.get_server_certificate"})
    methods = {
        "socket.socket": frozenset(
            {"connect", "connect_ex", "recv", "recv_into", "recvfrom", "recvfrom_into", "recvmsg", "send", "sendall", "sendto", "sendmsg", "accept", "sendfile", "makefile"}
        ),
    }
    message = "`{name}()` is a blocking socket call inside a coroutine"

    def visit_Call(self, node: ast.Call, ctx: FileContext) -> None:
        # `sock.setblocking(False)` / `sock.settimeout(0)`: later calls on that socket in
        # this function return at once (BlockingIOError) instead of blocking
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr in ("setblocking", "settimeout") and node.args:
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and arg.value in (False, 0, 0.0) and arg.value is not None:
                receiver = dotted_name(func.value)
                if receiver:
                    self.__dict__.setdefault("_nonblocking", set()).add((id(ctx.function), receiver))
        super().visit_Call(node, ctx)

    def matches(self, name: str, node: ast.Call, ctx: FileContext) -> bool:
        if not super().matches(name, node, ctx):
            return False
        func = node.func
        receiver = dotted_name(func.value) if isinstance(func, ast.Attribute) else None
        if receiver and (id(ctx.function), receiver) in self.__dict__.get("_nonblocking", ()):
            return False
        return not _expects_blocking_io_error(ctx)
    explanation = (
        "A blocking socket waits on the loop's thread for the peer; one slow peer stalls every task."
    )
    fix = "Use asyncio streams (`await asyncio.open_connection(...)`) or `await loop.sock_recv(sock, n)` on a non-blocking socket."
    fix_example = (
        "# before\nasync def ping(host):\n    s = socket.create_connection((host, 80))\n    s.sendall(b'PING')\n    return s.recv(4)\n\n"
        "# after\nasync def ping(host):\n    reader, writer = await asyncio.open_connection(host, 80)\n"
        "    writer.write(b'PING')\n    await writer.drain()\n    return await asyncio.wait_for(reader.read(4), 5)"
    )
    references = (ASYNCIO_DEV, "https://docs.python.org/3/library/asyncio-stream.html")


_DB_CURSOR = frozenset({"execute", "executemany", "executescript", "fetchone", "fetchmany", "fetchall", "callproc", "scroll", "copy_expert", "copy_from", "copy_to"})
_DB_CONN = frozenset({"execute", "executemany", "executescript", "commit", "rollback", "cursor", "backup", "ping"})


@rule
class SyncDatabase(BlockingRule):
    code = "AEX108"
    name = "sync-db-driver"
    what = "a synchronous database call"
    calls = frozenset({"sqlite3.connect", "psycopg2.connect", "psycopg.connect", "pymysql.connect", "MySQLdb.connect", "mysql.connector.connect"})
    methods = {
        "sqlite3.Connection": _DB_CONN,
        "sqlite3.Cursor": _DB_CURSOR,
        "psycopg2.connection": _DB_CONN,
        "psycopg2.cursor": _DB_CURSOR,
        "pymysql.Connection": _DB_CONN,
        "pymysql.Cursor": _DB_CURSOR,
        "pymongo.MongoClient": frozenset({"server_info", "list_database_names", "drop_database"}),
        "pymongo.Database": frozenset({"command", "list_collection_names"}),
        "pymongo.Collection": frozenset(
            {"find", "find_one", "insert_one", "insert_many", "update_one", "update_many", "delete_one", "delete_many", "aggregate", "count_documents", "replace_one", "bulk_write", "find_one_and_update"}
        ),
        "redis.Redis": frozenset({"*"}),
        "sqlalchemy.orm.Session": frozenset({"execute", "scalar", "scalars", "get", "commit", "flush", "refresh", "query", "merge", "delete", "rollback"}),
        "sqlalchemy.Engine": frozenset({"connect", "begin", "execute"}),
        "sqlalchemy.Connection": frozenset({"execute", "scalar", "commit", "exec_driver_sql"}),
    }
    message = "`{name}()` is a synchronous database call inside a coroutine; the loop waits for the query"
    explanation = (
        "A synchronous DB driver waits for the server on the loop's thread, so one slow query freezes every "
        "request the process is serving."
    )
    fix = "Use an async driver (asyncpg, aiosqlite, motor, redis.asyncio, SQLAlchemy AsyncSession) or `await asyncio.to_thread(...)`."
    fix_example = (
        "# before\nasync def list_chats(conn: sqlite3.Connection):\n    return conn.execute('SELECT ...').fetchall()\n\n"
        "# after\nasync def list_chats(db: aiosqlite.Connection):\n    async with db.execute('SELECT ...') as cur:\n"
        "        return await cur.fetchall()"
    )
    references = (ASYNCIO_DEV, "https://docs.sqlalchemy.org/en/20/orm/extensions/asyncio.html")

    def matches(self, name: str, node: ast.Call, ctx: FileContext) -> bool:
        typ, _, meth = name.rpartition(".")
        if typ == "redis.Redis" and meth in ("pipeline", "pubsub", "from_url"):
            return False
        if name.startswith("pymongo.MongoClient.") and name.count(".") >= 3:
            # client.db.collection.find_one(...): databases and collections are attributes
            return meth in self.methods["pymongo.Collection"]
        return super().matches(name, node, ctx)


@rule
class ThreadingWait(BlockingRule):
    code = "AEX109"
    name = "threading-wait"
    what = "a wait on a threading primitive"
    methods = {
        "threading.Lock": frozenset({"acquire"}),
        "threading.Semaphore": frozenset({"acquire"}),
        "threading.Event": frozenset({"wait"}),
        "threading.Condition": frozenset({"wait", "wait_for", "acquire"}),
        "threading.Thread": frozenset({"join"}),
        "queue.Queue": frozenset({"get", "put", "join"}),
    }
    message = "`{name}()` waits on a threading primitive inside a coroutine; the loop thread blocks"
    explanation = (
        "Threading locks, events and queues block the calling thread. On the loop's thread that freezes "
        "every task, and if the holder is a task on the same loop, it can never release: a deadlock."
    )
    fix = "Use the asyncio equivalent (asyncio.Lock/Event/Queue) or wait in a thread: `await asyncio.to_thread(q.get)`."
    fix_example = (
        "# before\nasync def consume(q: queue.Queue):\n    item = q.get()\n\n"
        "# after\nasync def consume(q: asyncio.Queue):\n    item = await q.get()"
    )
    references = (ASYNCIO_DEV, "https://docs.python.org/3/library/asyncio-sync.html")

    def matches(self, name: str, node: ast.Call, ctx: FileContext) -> bool:
        if not super().matches(name, node, ctx):
            return False
        meth = name.rpartition(".")[2]
        if meth in ("acquire", "get", "put"):
            block = _kw(node, "block") or _kw(node, "blocking")
            if block is None and meth == "acquire" and node.args:
                block = node.args[0]
            if block is None and meth == "get" and node.args:
                block = node.args[0]
            if block is None and meth == "put" and len(node.args) > 1:
                block = node.args[1]
            if _is_false(block):
                return False
        return True


@rule
class FutureResult(BlockingRule):
    code = "AEX110"
    name = "future-result"
    what = "a wait on a concurrent.futures Future"
    calls = frozenset({"concurrent.futures.wait", "concurrent.futures.as_completed"})
    methods = {
        "concurrent.futures.Future": frozenset({"result", "exception"}),
        "concurrent.futures.Executor": frozenset({"shutdown", "map"}),
    }
    message = "`{name}()` waits for a concurrent.futures result on the loop thread"
    explanation = (
        "Future.result() blocks until the worker finishes; on the loop's thread nothing else runs meanwhile."
    )
    fix = "Await it instead: `await asyncio.wrap_future(fut)` or `await loop.run_in_executor(executor, fn)`."
    fix_example = (
        "# before\nasync def compute(pool, x):\n    return pool.submit(work, x).result()\n\n"
        "# after\nasync def compute(pool, x):\n    loop = asyncio.get_running_loop()\n"
        "    return await loop.run_in_executor(pool, work, x)"
    )
    references = (ASYNCIO_DEV, RUN_IN_EXECUTOR, "https://docs.python.org/3/library/asyncio-future.html#asyncio.wrap_future")


@rule
class ConfiguredBlocking(BlockingRule):
    """Calls named in ``extra_blocking`` (pyproject or ``%config``)."""

    code = "AEX111"
    name = "configured-blocking"
    what = "a call configured as blocking"
    message = "`{name}()` is configured as blocking (extra_blocking) and is called inside a coroutine"
    explanation = "Your configuration lists this call as blocking: it holds the loop's thread until it returns."
    fix = "Call its async counterpart, or `await asyncio.to_thread(...)`."
    fix_example = (
        "# before\nasync def handler():\n    data = mylib.fetch_sync()\n\n"
        "# after\nasync def handler():\n    data = await asyncio.to_thread(mylib.fetch_sync)"
    )

    def matches(self, name: str, node: ast.Call, ctx: FileContext) -> bool:
        return bool(ctx.extra_blocking) and (
            name in ctx.extra_blocking or any(name.endswith("." + x) or name == x for x in ctx.extra_blocking)
        )


_NOT_LOCAL = ("asyncio.", "builtins.", "anyio.", "trio.", "typing.", "functools.", "contextlib.", "logging.")


@rule
class BlockingHelper(Rule):
    """A coroutine calls a sync function of the scanned code that blocks, directly
    or through other functions. Found by the linker, reported at the call site."""

    code = "AEX120"
    name = "blocking-helper"
    kind = "blocking-call-in-async"
    severity = Severity.CRITICAL
    section = Section.CRITICAL_ISSUES
    message = "`{callee}()` blocks the event loop: it reaches {bottom} ({where})"
    explanation = (
        "The called function is synchronous and, directly or through the functions it calls, makes a "
        "blocking call; run from a coroutine, it holds the loop's thread for that whole time."
    )
    fix = "Make the helper async (with non-blocking calls inside), or call it with `await asyncio.to_thread({callee}, ...)`."
    fix_example = (
        "# before\ndef save(row):\n    requests.post(URL, json=row)\n\nasync def handler(row):\n    save(row)\n\n"
        "# after\nasync def handler(row):\n    await asyncio.to_thread(save, row)"
    )
    references = (ASYNCIO_DEV, TO_THREAD)

    def visit_Call(self, node: ast.Call, ctx: FileContext) -> None:
        if not ctx.in_coroutine:
            return
        name = call_name(node, ctx)
        if not name or name.startswith(_NOT_LOCAL) or is_awaited(node, ctx):
            return
        ctx.defer("blocking-chain", self.code, name, node)

    def visit_For(self, node: ast.For, ctx: FileContext) -> None:
        # `for x in sync_generator(...)` inside a coroutine runs the generator's body
        if not ctx.in_coroutine or not isinstance(node.iter, ast.Call):
            return
        name = call_name(node.iter, ctx)
        if name and not name.startswith(_NOT_LOCAL):
            ctx.defer("blocking-chain", self.code, name, node, iterate=True)

    def visit_Attribute(self, node: ast.Attribute, ctx: FileContext) -> None:
        # reading a @property of the scanned code runs its getter: `self.config` may
        # read a file or query a database without looking like a call
        if not ctx.in_coroutine or node.attr not in self._properties(ctx) or not isinstance(node.ctx, ast.Load):
            return
        parent = ctx.parent
        if isinstance(parent, ast.Call) and parent.func is node:
            return
        name = ctx.resolve(node)
        if name and not name.startswith(_NOT_LOCAL):
            ctx.defer("blocking-chain", self.code, name, node, property=True)

    def _properties(self, ctx: FileContext) -> frozenset[str]:
        """Names of the getters decorated ``@property``/``@cached_property`` in this file's classes."""
        props = self.__dict__.get("_props")
        if props is None:
            found = set()
            for info in ctx.classes.values():
                for item in info["node"].body:
                    if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and any(
                        (dotted_name(d) or "").rpartition(".")[2] in ("property", "cached_property") for d in item.decorator_list
                    ):
                        found.add(item.name)
            props = self.__dict__["_props"] = frozenset(found)
        return props


_SEV = {"critical": Severity.CRITICAL, "warning": Severity.WARNING, "info": Severity.INFO}


@link_check("blocking-chain")
def _blocking_chain(d: Deferred, program: Program) -> Iterable[Finding]:
    f = program.func(d.target)
    if f is None or f.is_async:
        return ()
    if f.is_generator and not d.data.get("iterate"):
        return ()
    if not f.is_generator and d.data.get("iterate"):
        return ()  # the call itself was already checked by visit_Call
    if f.qualname == d.caller:
        return ()
    chain = _chain_from(program, f)
    if not chain:
        return ()
    bottom = chain[-1]
    hit = bottom.what
    sev = _bottom_severity(program, bottom)
    rule_cls = BlockingHelper
    callee = d.target.rpartition(".")[2] if "." in d.target else d.target
    if d.data.get("property"):
        frames = (f"{d.caller} reads property {callee} ({d.path}:{d.line})", *[str(fr) for fr in chain])
        message = f"reading property `{callee}` blocks the event loop: its getter reaches `{hit}()` at {bottom.path}:{bottom.line}"
    else:
        frames = (f"{d.caller} calls {callee}() ({d.path}:{d.line})", *[str(fr) for fr in chain])
        what = "iterating " if d.data.get("iterate") else ""
        message = f"{what}`{callee}()` blocks the event loop: it reaches `{hit}()` at {bottom.path}:{bottom.line}"
    return (
        rule_cls(severity=sev).make_finding(
            path=d.path,
            line=d.line,
            col=d.col,
            end_line=d.end_line,
            symbol=d.symbol,
            snippet=d.snippet,
            call_chain=frames,
            message=message,
            callee=callee,
        ),
    )


def _chain_from(program: Program, f: Any) -> tuple:
    if f.is_generator:
        # the generator's own body runs while it is iterated: search from it, allowing it as root
        hits = f.notes.get("blocking")
        if hits:
            from ..link import Frame

            what, line = hits[0][0], hits[0][1]
            return (Frame(f.qualname, f.path, int(line), str(what)),)
        for callee, _line in f.calls:
            sub = program.chain(callee)
            if sub:
                return sub
        return ()
    return program.chain(f.qualname) or ()


def _bottom_severity(program: Program, bottom: Any) -> Severity:
    f = program.funcs.get(bottom.qualname)
    if f is not None:
        for hit in f.notes.get("blocking", ()):
            if hit[1] == bottom.line and len(hit) > 2:
                return _SEV.get(hit[2], Severity.CRITICAL)
    return Severity.CRITICAL
