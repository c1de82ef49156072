"""A directory replaced atomically, and read back as one version.

Model and checkpoint directories (model/modelio.py) are written here.
``replace_dir(path, files, kind)`` builds the whole new directory in a hidden
sibling .NAME.tmp-PID-RANDOM, fsyncs every file and the directory, then swaps
it in:
- PATH absent: rename(2) moves it into place.
- PATH present, on Linux: renameat2(RENAME_EXCHANGE) swaps the two directories in
  one step, so PATH is complete, old or new, at every instant, for readers and
  after a kill -9 anywhere. The old one, now at the temporary name, is removed
  or kept as NAME.prev (swapped in the same way).
- PATH present, no exchange (not Linux, or a file system without it): PATH is
  renamed to .NAME.old-PID-RANDOM, then the new directory to PATH. Between the two
  renames PATH is absent; a save killed there leaves the old directory whole in
  the .old- sibling, which the next save puts back first and open_snapshot's
  error names.
Not a symlink (NAME -> NAME.v7, one atomic rename anywhere): a model must stay a
plain directory that cp -r, tar and rm -r treat as one thing.

Each save first removes the .tmp-/.old- siblings of dead processes (killed saves).
``open_snapshot`` opens the directory once and each file relative to it, so a
reader never mixes the files of two versions, even during a save.
"""
import ctypes
import errno
import functools
import glob
import os
import re
import secrets
import shutil
import sys

from seqtool.errors import SeqtoolError, UsageError

# ---------------------------------------------------------------- writing

def replace_dir(path, files: dict, kind: str, keep_previous: bool = False, optional: tuple = ()) -> None:
    """Build ``files`` (name -> bytes, or name -> a function writing to a binary file) in a temp sibling
    and swap it in at ``path`` (module doc). Only a directory holding nothing but these names (and the
    ``optional`` ones a directory of this kind may have) is replaced; ``keep_previous`` keeps the replaced
    one as ``path.prev``."""
    path = os.path.realpath(os.fspath(path))
    allowed = tuple(files) + tuple(optional)
    _refuse_foreign(path, allowed, kind)
    if keep_previous:
        _refuse_foreign(path + ".prev", allowed, kind)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    _tidy(path)
    _tidy(path + ".prev")
    tmp = _sibling(path, "tmp")
    os.mkdir(tmp)
    try:
        for fname, content in files.items():
            _write_file(os.path.join(tmp, fname), content)
        _fsync_dir(tmp)
        old = _swap_in(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None and keep_previous:
        old = _swap_in(old, path + ".prev")
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def check_replaceable(path, allowed: tuple, kind: str) -> None:
    """What ``replace_dir(path, ...)`` would refuse or fail on, found before the work that makes the files:
    a foreign directory or a file at ``path``, or a parent that is a file or cannot be written."""
    path = os.path.normpath(os.fspath(path))      # as the user wrote it, for the messages
    _refuse_foreign(path, allowed, kind)
    parent = os.path.dirname(path) or "."
    while not os.path.lexists(parent):          # the nearest existing ancestor is where makedirs starts
        parent = os.path.dirname(parent) or "."
    if not os.path.isdir(parent):
        raise UsageError(f"cannot create a {kind} directory here: {parent} is a file, not a directory", path)
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"cannot create a {kind} directory here: {parent} is not writable", path)


def _refuse_foreign(path: str, allowed: tuple, kind: str) -> None:
    """Only a seqtool directory of this kind may be replaced: never delete someone's other files."""
    if not os.path.lexists(path):
        return
    if not os.path.isdir(path):
        raise UsageError(f"exists and is not a {kind} directory; refusing to replace it", path)
    foreign = sorted(set(os.listdir(path)) - set(allowed))
    if foreign:
        raise UsageError(f"holds {foreign[0]!r}, which is not part of a seqtool {kind}; refusing to replace "
                         "it (choose another path, or remove it)", path)


def _write_file(fpath: str, content) -> None:
    with open(fpath, "xb") as f:
        if isinstance(content, bytes):
            f.write(content)
        else:
            content(f)
        f.flush()
        os.fsync(f.fileno())


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sibling(path: str, tag: str) -> str:
    parent, name = os.path.split(path)
    return os.path.join(parent, f".{name}.{tag}-{os.getpid()}-{secrets.token_hex(4)}")


def _swap_in(src: str, dst: str) -> str | None:
    """Put the complete directory ``src`` at ``dst``; return where dst's old directory went (None if none).

    The swap is made durable (parent fsynced) before the caller removes the old one.
    """
    old = None
    if not os.path.lexists(dst):
        os.rename(src, dst)
    elif _exchange(src, dst):
        old = src
    else:
        backup = _sibling(dst, "old")
        os.rename(dst, backup)       # dst is absent from here ...
        try:
            os.rename(src, dst)      # ... to here: the window the module doc describes
        except BaseException:
            os.rename(backup, dst)
            raise
        # An .old- directory is always a whole model (_tidy may put it back): rename
        # it to a temporary name before anyone starts removing its files.
        old = _sibling(dst, "tmp")
        os.rename(backup, old)
    _fsync_dir(os.path.dirname(dst))
    return old


def _tidy(path: str) -> None:
    """Clean up after killed saves: put back an old model moved aside, remove their temp dirs."""
    parent, name = os.path.split(path)
    pattern = re.compile(rf"\.{re.escape(name)}\.(tmp|old)-(\d+)-[0-9a-f]+")
    dead = []
    for entry in os.listdir(parent):
        m = pattern.fullmatch(entry)
        if m and not process_alive(int(m[2])):
            dead.append((m[1], os.path.join(parent, entry)))
    olds = sorted((p for tag, p in dead if tag == "old"), key=os.path.getmtime)
    if olds and not os.path.lexists(path):
        os.rename(olds[-1], path)
        dead.remove(("old", olds[-1]))
    for _, p in dead:
        shutil.rmtree(p, ignore_errors=True)


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (its temporaries are not leftovers of a killed writer)."""
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, run by another user
        pass
    return True


_AT_FDCWD = -100          # linux/fcntl.h
_RENAME_EXCHANGE = 1 << 1  # linux/fs.h


def _exchange(a: str, b: str) -> bool:
    """Swap two paths atomically (Linux renameat2 RENAME_EXCHANGE); False where that is unsupported."""
    fn = _renameat2()
    if fn is None:
        return False
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), b)


@functools.cache
def _renameat2():
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):  # libc older than glibc 2.28, or not glibc
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


# ---------------------------------------------------------------- reading

def open_snapshot(path: str, names: tuple, kind: str, optional: tuple = ()) -> dict:
    """Open every file of the directory as one version: the directory first, then each file in it
    (the ``optional`` ones when present).

    A save that swaps PATH meanwhile cannot mix versions; if it removed the old
    version's files before they were opened, try again on the new version.
    """
    for _ in range(5):
        try:
            dfd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError:
            raise SeqtoolError(f"no such {kind} directory{_backup_hint(path)}", path) from None
        except NotADirectoryError:
            raise SeqtoolError(f"not a {kind} directory", path) from None
        except OSError as e:
            raise SeqtoolError(f"cannot open: {e.strerror}", path) from None
        files = {}
        try:
            for name in names + tuple(optional):
                try:
                    files[name] = os.fdopen(os.open(name, os.O_RDONLY, dir_fd=dfd), "rb")
                except FileNotFoundError:
                    if name not in optional or _was_replaced(path, dfd):
                        raise
            return files
        except OSError as e:
            for f in files.values():
                f.close()
            if not (isinstance(e, FileNotFoundError) and _was_replaced(path, dfd)):
                what = f"missing: the {kind} is incomplete" if isinstance(e, FileNotFoundError) \
                    else f"cannot open: {e.strerror}"
                raise SeqtoolError(what, os.path.join(path, name)) from None
        finally:
            os.close(dfd)
    raise SeqtoolError("kept changing while being read (is a save looping?)", path)


def _was_replaced(path: str, dfd: int) -> bool:
    try:
        now = os.stat(path)
    except OSError:
        return True
    then = os.fstat(dfd)
    return (now.st_dev, now.st_ino) != (then.st_dev, then.st_ino)


def _backup_hint(path: str) -> str:
    parent, name = os.path.split(os.path.abspath(path))
    olds = glob.glob(os.path.join(glob.escape(parent), f".{glob.escape(name)}.old-*"))
    if not olds:
        return ""
    return f" (an interrupted save left the previous one at {olds[0]}: rename it back, or save again)"
