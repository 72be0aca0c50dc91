# sdbx Python context driver.
#
# The sdbx agent starts one of these per Python code context, as
#   python3 -c <bootstrap>
# where the bootstrap reads this file from fd 7 and runs it as the module
# _sdbx_driver. File descriptors:
#   0  /dev/null
#   1  stdout pipe   (raw output of the code, its subprocesses, C code)
#   2  stderr pipe
#   3  requests from the agent, one JSON object per line
#   4  messages to the agent, one JSON object per line
#   5  the stdout pipe again, for sync markers only
#   6  the stderr pipe again, for sync markers only
#
# Requests:  {"type": "execute", "id": ID, "count": N, "code": SRC, "env": {K: V}}
# Messages:  {"type": "ready", "pid": P, "version": V}           once, at start
#            {"type": "result", "id": ID, "data": BUNDLE, "main": B, "sync": K}
#            {"type": "error", "id": ID, "name": N, "value": V, "traceback": T, "sync": K}
#            {"type": "done", "id": ID, "sync": K}                 last for ID
#
# Ordering: before every message the driver flushes sys.stdout/sys.stderr.
# Before a message with "sync": K it also writes the marker line
# "\0sdbx-sync:TOKEN:K\n" to fd 5 and fd 6; the agent delivers message K
# only after it has read marker K from both pipes, so every line written
# to fd 1/2 before the message reaches the client before it, and none
# written after it does. "done" comes without a marker (the run is over:
# nothing of it is written after it): the agent delivers it after passing
# on what the pipes hold when it is its turn. "sync" is also left out when
# a marker could not be written.
#
# Only modules the interpreter has loaded anyway, or C modules, are
# imported at start, so that a context is ready soon after the interpreter:
# _ast and _signal instead of ast and signal (whose enums cost milliseconds),
# _json's scanner and string encoder instead of json. json, traceback,
# asyncio, textwrap and matplotlib are imported only once a run needs them;
# linecache is filled with the cells' sources when something imports it.

import _ast
import _signal
import _thread
import binascii
import builtins
import io
import os
import sys
import types

REQ_FD, MSG_FD, OUT_FD, ERR_FD = 3, 4, 5, 6
DRIVER_FILE = "<sdbx-driver>"
CO_COROUTINE = 0x80
TOP_LEVEL_AWAIT = getattr(_ast, "PyCF_ALLOW_TOP_LEVEL_AWAIT", 0)
MAIN_THREAD = _thread.get_ident()
DRIVER_PID = os.getpid()
TOKEN = os.environ.pop("SDBX_KERNEL_TOKEN", "").encode("ascii", "replace")
# Result messages larger than this are replaced by their text form.
MAX_MESSAGE = 48 << 20


class _State:
    running = False  # user code of an execution is running
    critical = 0  # >0 while the main thread writes a message
    pending = False  # SIGINT arrived inside a critical section
    exec_id = None  # id of the current execution
    seq = 0  # last sync marker number
    loop = None  # asyncio loop for top-level await
    libc = None


S = _State()
_send_lock = _thread.allocate_lock()


def _on_sigint(signum, frame):
    # Interrupt only the user's code; a SIGINT that arrives while the driver
    # itself works (between executions, while writing a message) is dropped
    # or delayed so that the protocol never breaks.
    if not S.running:
        return
    if S.critical:
        S.pending = True
        return
    raise KeyboardInterrupt


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _flush_streams():
    for s in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            if s is not None:
                s.flush()
        except Exception:
            pass
    # C code writing through stdio keeps its own buffers; flush them when
    # ctypes is already in use (importing it here would slow every run).
    if "ctypes" in sys.modules:
        try:
            if S.libc is None:
                S.libc = sys.modules["ctypes"].CDLL(None)
            S.libc.fflush(None)
        except Exception:
            pass


try:
    from _json import encode_basestring_ascii as _json_str
    from _json import make_scanner as _make_scanner
except ImportError:
    _json_str = _make_scanner = None


def _flat_json(msg):
    # The JSON that json.dumps would write for a message whose values are
    # strings, ints or None (ready, done, error), or None for any other.
    if _json_str is None:
        return None
    parts = []
    for k, v in msg.items():
        if type(v) is str:
            v = _json_str(v)
        elif type(v) is int:
            v = str(v)
        elif v is None:
            v = "null"
        else:
            return None
        parts.append(_json_str(k) + ": " + v)
    return "{" + ", ".join(parts) + "}"


def _dumps(msg):
    line = _flat_json(msg)
    if line is not None:
        return line
    import json

    try:
        return json.dumps(msg, allow_nan=False, default=str)
    except ValueError:
        # NaN or infinity inside application/json: drop that form.
        data = msg.get("data")
        if isinstance(data, dict):
            data.pop("application/json", None)
        return json.dumps(msg, default=str)


class _ScanContext:
    # What json.JSONDecoder gives _json's scanner, with json.loads' defaults.
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}.__getitem__
    memo = {}


def _request_decoder():
    # json.loads for one request line, through _json's scanner when there is
    # one (the json module would import re and enum).
    scan = None
    if _make_scanner is not None:
        try:
            scan = _make_scanner(_ScanContext())
        except Exception:
            scan = None
    if scan is None:
        import json

        return json.loads

    def loads(line):
        s = line.decode("utf-8")
        i = len(s) - len(s.lstrip(" \t\n\r"))
        try:
            obj, end = scan(s, i)
        except StopIteration:
            raise ValueError("request is not JSON") from None
        if s[end:].strip(" \t\n\r"):
            raise ValueError("extra data after the request")
        return obj

    return loads


def _send(msg, mark=True):
    if os.getpid() != DRIVER_PID:
        # A fork of the driver made by the code: only the driver talks.
        return
    main = _thread.get_ident() == MAIN_THREAD
    if main:
        S.critical += 1
    try:
        with _send_lock:
            _flush_streams()
            if mark:
                S.seq += 1
                marker = b"\0sdbx-sync:" + TOKEN + b":" + str(S.seq).encode() + b"\n"
                ok = True
                for fd in (OUT_FD, ERR_FD):
                    try:
                        _write_all(fd, marker)
                    except OSError:
                        ok = False
                if ok:
                    msg["sync"] = S.seq
            line = _dumps(msg)
            if len(line) > MAX_MESSAGE and msg.get("type") == "result":
                text = msg["data"].get("text/plain", "")
                msg["data"] = {"text/plain": text[:65536] + "\n[sdbx: result too large, only its text is shown]"}
                line = _dumps(msg)
            _write_all(MSG_FD, line.encode("utf-8", "backslashreplace") + b"\n")
    finally:
        if main:
            S.critical -= 1
            if S.pending and not S.critical and S.running:
                S.pending = False
                raise KeyboardInterrupt


# ---- rich results -------------------------------------------------------

_REPRS = (
    ("_repr_html_", "text/html"),
    ("_repr_markdown_", "text/markdown"),
    ("_repr_svg_", "image/svg+xml"),
    ("_repr_png_", "image/png"),
    ("_repr_jpeg_", "image/jpeg"),
    ("_repr_latex_", "text/latex"),
    ("_repr_json_", "application/json"),
    ("_repr_pdf_", "application/pdf"),
    ("_repr_javascript_", "application/javascript"),
)
_BINARY = {"image/png", "image/jpeg", "application/pdf", "image/gif"}


def _method(obj, name):
    # Look the method up on the type, as IPython does: classes themselves
    # and objects whose __getattr__ answers every name are not asked.
    m = getattr(type(obj), name, None)
    return m if callable(m) else None


def _bundle(obj):
    data = {}
    m = _method(obj, "_repr_mimebundle_")
    if m is not None:
        try:
            try:
                r = m(obj, include=None, exclude=None)
            except TypeError:
                r = m(obj)
            if isinstance(r, tuple):
                r = r[0]
            if isinstance(r, dict):
                data.update(r)
        except Exception:
            pass
    for name, mime in _REPRS:
        if mime in data:
            continue
        m = _method(obj, name)
        if m is None:
            continue
        try:
            r = m(obj)
        except Exception:
            continue
        if isinstance(r, tuple) and len(r) == 2:
            r = r[0]
        if r is not None:
            data[mime] = r
    if "image/png" not in data and _is_figure(obj):
        try:
            data["image/png"] = _figure_png(obj)
            _close_figure(obj)
        except Exception:
            pass
    if "text/plain" not in data:
        try:
            data["text/plain"] = repr(obj)
        except Exception as e:
            data["text/plain"] = "<repr failed: %s: %s>" % (type(e).__name__, e)
    return _normalize(data)


def _normalize(data):
    out = {}
    for mime, v in data.items():
        if not isinstance(mime, str):
            continue
        if isinstance(v, (bytes, bytearray, memoryview)):
            if mime in _BINARY or not (mime.startswith("text/") or mime.endswith("+xml")):
                v = binascii.b2a_base64(bytes(v), newline=False).decode("ascii")
            else:
                v = bytes(v).decode("utf-8", "replace")
        elif isinstance(v, (dict, list)) or mime == "application/json" or mime.endswith("+json"):
            pass
        elif not isinstance(v, str):
            v = str(v)
        out[mime] = v
    return out


def _send_result(data, main):
    if S.exec_id is None:
        return
    _send({"type": "result", "id": S.exec_id, "data": data, "main": main})


def display(*objs, raw=False, **kwargs):
    """Show each object as a rich result (HTML, images, ...) of the run.

    With raw=True each object is a MIME bundle: {"text/html": "...", ...}.
    """
    for obj in objs:
        if raw and isinstance(obj, dict):
            _send_result(_normalize(obj), False)
        else:
            _send_result(_bundle(obj), False)


# ---- matplotlib ---------------------------------------------------------


def _is_figure(obj):
    fm = sys.modules.get("matplotlib.figure")
    return fm is not None and isinstance(obj, fm.Figure)


def _figure_png(fig):
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    return buf.getvalue()


def _close_figure(fig):
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is not None:
        plt.close(fig)


def _flush_figures():
    """Send every open pyplot figure as an image/png result and close it."""
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is None:
        return
    helpers = sys.modules.get("matplotlib._pylab_helpers")
    if helpers is None:
        return
    for manager in list(helpers.Gcf.get_all_fig_managers()):
        fig = manager.canvas.figure
        try:
            data = {"text/plain": repr(fig), "image/png": _figure_png(fig)}
        except Exception as e:
            data = {"text/plain": "<figure could not be drawn: %s: %s>" % (type(e).__name__, e)}
        plt.close(fig)
        _send_result(_normalize(data), False)


def _patch_pyplot(plt):
    original = getattr(plt, "show", None)

    def show(*args, **kwargs):
        """Send the open figures as image/png results of the run."""
        _flush_figures()

    show.__wrapped__ = original
    plt.show = show


# Sources of the cells run so far, by file name, as linecache entries: kept
# here until something imports linecache, then in linecache.cache.
_CELLS = {}


def _remember_cell(filename, src):
    entry = (len(src), None, src.splitlines(True), filename)
    lc = sys.modules.get("linecache")
    if lc is not None and isinstance(getattr(lc, "cache", None), dict):
        lc.cache.update(_CELLS)
        _CELLS.clear()
        lc.cache[filename] = entry
    else:
        _CELLS[filename] = entry


def _patch_linecache(lc):
    lc.cache.update(_CELLS)
    _CELLS.clear()


# Modules patched right after they are imported.
_PATCHES = {"matplotlib.pyplot": _patch_pyplot, "linecache": _patch_linecache}


class _PatchingLoader:
    """Runs a module's own loader, then patches the module."""

    def __init__(self, inner, patch):
        self._inner = inner
        self._patch = patch

    def create_module(self, spec):
        return self._inner.create_module(spec)

    def exec_module(self, module):
        self._inner.exec_module(module)
        try:
            self._patch(module)
        except Exception:
            pass

    def __getattr__(self, name):
        return getattr(self._inner, name)


class _PatchingFinder:
    """Import hook that patches the modules of _PATCHES when imported."""

    def find_spec(self, name, path, target=None):
        patch = _PATCHES.get(name)
        if patch is None:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _PatchingLoader(spec.loader, patch)
        return spec

    def invalidate_caches(self):
        pass


# ---- execution ----------------------------------------------------------


def _dedent(src):
    for line in src.splitlines():
        if line.strip():
            if line[0] in " \t":
                import textwrap

                return textwrap.dedent(src)
            return src
    return src


def _compile(src, filename):
    """Returns (body code, last-expression code or None, suppressed)."""
    flags = _ast.PyCF_ONLY_AST | TOP_LEVEL_AWAIT
    tree = compile(src, filename, "exec", flags=flags, dont_inherit=True)
    last = None
    suppress = False
    if tree.body and isinstance(tree.body[-1], _ast.Expr):
        node = tree.body.pop()
        lines = src.splitlines()
        if node.end_lineno is not None and node.end_lineno <= len(lines):
            rest = lines[node.end_lineno - 1].encode("utf-8")[node.end_col_offset :]
            suppress = rest.decode("utf-8", "replace").lstrip().startswith(";")
        last = compile(_ast.Expression(body=node.value), filename, "eval", flags=TOP_LEVEL_AWAIT, dont_inherit=True)
    body = compile(tree, filename, "exec", flags=TOP_LEVEL_AWAIT, dont_inherit=True)
    return body, last, suppress


def _run_async(coro):
    import asyncio

    loop = S.loop
    if loop is None or loop.is_closed():
        loop = S.loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    task = loop.create_task(coro)
    try:
        return loop.run_until_complete(task)
    except BaseException:
        if not task.done():
            task.cancel()
        raise


def _run(code, ns):
    value = eval(code, ns)
    if code.co_flags & CO_COROUTINE:
        value = _run_async(value)
    return value


def _traceback(e):
    import traceback

    tb = e.__traceback__
    cell = tb
    while cell is not None and not cell.tb_frame.f_code.co_filename.startswith("<cell-"):
        cell = cell.tb_next
    if cell is None:
        while tb is not None and tb.tb_frame.f_code.co_filename == DRIVER_FILE:
            tb = tb.tb_next
        cell = tb
    if isinstance(e, SyntaxError) and cell is None:
        lines = traceback.format_exception_only(type(e), e)
    else:
        te = traceback.TracebackException(type(e), e, cell)
        _drop_driver_frames(te, set())
        lines = te.format()
    return "".join(lines).rstrip("\n")


def _drop_driver_frames(te, seen):
    # The driver's own frames (its SIGINT handler, the pyplot import hook)
    # are no business of the code's author.
    if te is None or id(te) in seen:
        return
    seen.add(id(te))
    frames = [f for f in te.stack if f.filename != DRIVER_FILE]
    if len(frames) != len(te.stack):
        import traceback

        te.stack = traceback.StackSummary.from_list(frames)
    _drop_driver_frames(te.__cause__, seen)
    _drop_driver_frames(te.__context__, seen)


def _send_error(e):
    try:
        value = str(e)
    except Exception:
        value = "<exception str() failed>"
    try:
        tb = _traceback(e)
    except Exception:
        tb = "%s: %s" % (type(e).__name__, value)
    if S.exec_id is not None:
        _send({"type": "error", "id": S.exec_id, "name": type(e).__name__, "value": value, "traceback": tb})


def _execute(code, count, ns):
    filename = "<cell-%d>" % count
    src = _dedent(code)
    _remember_cell(filename, src)
    S.running = True
    try:
        body, last, suppress = _compile(src, filename)
        _run(body, ns)
        value = None
        if last is not None:
            value = _run(last, ns)
        _flush_figures()
        if value is not None and not suppress:
            _send_result(_bundle(value), True)
    except BaseException as e:
        S.running = False
        _send_error(e)
        if not isinstance(e, KeyboardInterrupt):
            # Figures drawn before the error are shown too.
            try:
                _flush_figures()
            except Exception:
                pass
    finally:
        S.running = False
        S.pending = False


def _run_request(req, ns):
    S.exec_id = req.get("id")
    # Code that ignored SIGINT, or gave it back its default (which would
    # kill the interpreter), must not stop the next runs' interrupts.
    if _signal.getsignal(_signal.SIGINT) in (_signal.SIG_IGN, _signal.SIG_DFL, None):
        _signal.signal(_signal.SIGINT, _on_sigint)
    env = req.get("env") or {}
    saved = {}
    for k, v in env.items():
        saved[k] = os.environ.get(k)
        os.environ[k] = v
    try:
        _execute(req.get("code") or "", int(req.get("count") or 0), ns)
        if os.getpid() != DRIVER_PID:
            # A fork that ran on to the end of the cell must not become a
            # second driver.
            _flush_streams()
            os._exit(0)
    finally:
        for k, old in saved.items():
            if old is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = old
        try:
            _send({"type": "done", "id": S.exec_id}, mark=False)
        finally:
            S.exec_id = None


def _main():
    for fd in (REQ_FD, MSG_FD, OUT_FD, ERR_FD):
        os.set_inheritable(fd, False)
    for s in (sys.stdout, sys.stderr):
        try:
            s.reconfigure(line_buffering=True, errors="backslashreplace")
        except Exception:
            pass
    os.environ.setdefault("MPLBACKEND", "Agg")
    sys.argv = [""]
    sys.meta_path.insert(0, _PatchingFinder())

    main = types.ModuleType("__main__")
    main.__dict__["__builtins__"] = builtins
    sys.modules["__main__"] = main
    builtins.display = display
    ns = main.__dict__

    _signal.signal(_signal.SIGINT, _on_sigint)
    requests = open(REQ_FD, "rb", closefd=False)
    loads = _request_decoder()
    _write_all(MSG_FD, (_dumps({"type": "ready", "pid": os.getpid(), "version": sys.version.split()[0]}) + "\n").encode())
    while True:
        try:
            line = requests.readline()
            if not line:
                break
            req = loads(line)
            if req.get("type") == "execute":
                _run_request(req, ns)
        except KeyboardInterrupt:
            continue
        except (ValueError, TypeError, AttributeError) as e:
            sys.stderr.write("sdbx driver: bad request: %s\n" % e)


_main()
