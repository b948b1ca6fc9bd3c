"""Put a deploy output folder in place all at once.

A deploy writes its artefacts and ``report.json`` into a fresh sibling folder
``<out>.tmp-<pid>-<random>`` (same parent, so renames stay on one file
system) and moves it onto ``<out>`` only after the report is written. So
``<out>`` holds either the previous complete output or the new complete one,
never new artefacts beside an old report. A deploy that raises removes its
temporary folder and leaves ``<out>`` untouched.

Replacing an existing ``<out>`` takes two renames (the old folder aside to
``<out>.old-<pid>-<random>``, the new one in) and then deletes the old one.
A process killed between the renames leaves no ``<out>``: the next deploy to
the same folder first puts the old one back (a killed deploy counts as one
that never ran), then removes every leftover of a dead process, and says
what it did.

Only a folder that is empty or is itself a bidl-deploy output (every entry
named by its ``report.json``) is ever replaced: any other content is refused
before work starts, so a wrong ``--out`` can never delete a user's files.
"""
import errno
import json
import os
import os.path as osp
import re
import secrets
import shutil
from contextlib import contextmanager

from mmengine.logging import print_log

from bidl_train.errors import BidlError, ConfigError

__all__ = ['staged_output', 'recover_leftovers', 'leftover_folders']


def _leftover_pattern(name):
    return re.compile(re.escape(name) + r'\.(tmp|old)-(\d+)-\w+')


def leftover_folders(out):
    """``[(kind, pid, path)]`` of the temporary (``'tmp'``) and set-aside
    (``'old'``) folders of deploys to ``out``, whoever left them."""
    parent, name = osp.split(osp.abspath(out))
    if not osp.isdir(parent):
        return []
    pattern = _leftover_pattern(name)
    found = []
    for entry in sorted(os.listdir(parent)):
        match = pattern.fullmatch(entry)
        path = osp.join(parent, entry)
        if match and osp.isdir(path) and not osp.islink(path):
            found.append((match.group(1), int(match.group(2)), path))
    return found


def _alive(pid):
    """Whether process ``pid`` still runs (its folders are not leftovers)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def recover_leftovers(out):
    """Undo what deploys to ``out`` killed midway left behind.

    When ``<out>`` is missing and a dead process set an old folder aside, it
    is renamed back (the newest, if several). Every other leftover of a dead
    process is deleted. Folders of live processes are left alone.

    Returns:
        list[str]: one line per action, also logged as a warning.
    """
    out = osp.abspath(out)
    dead = [(kind, path) for kind, pid, path in leftover_folders(out)
            if not _alive(pid)]
    messages = []
    asides = sorted((path for kind, path in dead if kind == 'old'),
                    key=osp.getmtime)
    if asides and not osp.lexists(out):
        os.rename(asides[-1], out)
        dead.remove(('old', asides[-1]))
        messages.append(f'restored {out} from {osp.basename(asides[-1])}, '
                        'set aside by a deploy killed while replacing it')
    for kind, path in dead:
        shutil.rmtree(path)
        what = ('the unfinished output' if kind == 'tmp' else
                'the replaced previous output')
        messages.append(f'removed {osp.basename(path)}: {what} of a '
                        'killed deploy')
    for line in messages:
        print_log(f'bidl-deploy: {line}', logger='current', level=30)
    return messages


def _foreign_entries(out):
    """Entries of the existing folder ``out`` that no bidl-deploy report in
    it names (all of them when it has no readable report)."""
    entries = set(os.listdir(out))
    if not entries:
        return []
    try:
        with open(osp.join(out, 'report.json')) as f:
            report = json.load(f)
        named = set(report['files'].values()) | {'report.json'}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        named = set()
    return sorted(entries - named)


def _check_replaceable(out):
    if osp.lexists(out) and not osp.isdir(out):
        raise ConfigError(f'deploy output {out} exists and is not a folder; '
                          'choose another --out')
    cwd = osp.realpath(os.getcwd())
    if cwd == out or cwd.startswith(out + os.sep):
        raise ConfigError(f'deploy output {out} is (or contains) the current '
                          'directory, which a deploy would replace; choose '
                          'another --out')
    if osp.isdir(out):
        foreign = _foreign_entries(out)
        if foreign:
            shown = ', '.join(foreign[:5]) + (', ...' if len(foreign) > 5
                                              else '')
            raise ConfigError(
                f'deploy output {out} holds entries that no bidl-deploy '
                f'report there names ({shown}); a deploy replaces the whole '
                'folder, so choose an empty or new --out (or remove them)')


def _fsync_tree(folder):
    """Flush every file of ``folder`` and the folder itself to disk, so a
    power cut after the rename cannot expose a half-written artefact."""
    for root, _, files in os.walk(folder):
        for name in files:
            fd = os.open(osp.join(root, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(root)


def _fsync_dir(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fresh_name(parent, name, kind):
    return osp.join(parent, f'{name}.{kind}-{os.getpid()}-'
                    f'{secrets.token_hex(4)}')


def _make_staging(parent, name):
    """A new empty ``<name>.tmp-<pid>-<random>`` (``os.mkdir``, so the
    output gets the usual umask permissions, unlike ``mkdtemp``'s 0700)."""
    while True:
        path = _fresh_name(parent, name, 'tmp')
        try:
            os.mkdir(path)
            return path
        except FileExistsError:
            continue


def _set_aside(out, parent, name):
    """Rename the current ``out`` to ``<name>.old-<pid>-<random>``; ``None``
    when there is none (anymore)."""
    aside = _fresh_name(parent, name, 'old')
    try:
        os.rename(out, aside)
    except FileNotFoundError:
        return None
    return aside


def _move_in(staging, out):
    os.rename(staging, out)


def _commit(staging, out):
    """Move the complete ``staging`` folder onto ``out``."""
    parent, name = osp.split(out)
    _fsync_tree(staging)
    for _ in range(10):  # another live deploy may put its folder in between
        aside = _set_aside(out, parent, name) if osp.lexists(out) else None
        try:
            _move_in(staging, out)
        except OSError as err:
            if aside is not None:
                if osp.lexists(out):  # a newer output took the place
                    shutil.rmtree(aside)
                else:  # keep the old one where it was
                    os.rename(aside, out)
            if err.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
            continue
        _fsync_dir(parent)
        if aside is not None:
            shutil.rmtree(aside)
        return
    raise BidlError(f'could not move the deploy output into {out}: other '
                    'deploys to the same folder keep replacing it')


@contextmanager
def staged_output(out):
    """Yield a fresh temporary folder beside ``out``; on a clean exit, move
    it onto ``out`` (replacing a previous output), on an exception delete it.

    Before it starts it recovers what killed deploys to ``out`` left and
    refuses an ``out`` with content that is not a bidl-deploy output.

    Yields:
        (str, list[str]): the temporary folder and the recovery messages.
    """
    out = osp.realpath(osp.abspath(osp.expanduser(out)))
    parent, name = osp.split(out)
    os.makedirs(parent, exist_ok=True)
    recovered = recover_leftovers(out)
    _check_replaceable(out)
    staging = _make_staging(parent, name)
    try:
        yield staging, recovered
        _commit(staging, out)
    finally:
        if osp.isdir(staging):
            shutil.rmtree(staging)
