"""Paths taken from data files stay inside the data root.

Annotation files (DVS128 Gesture's trial lists, Jester's CSVs, ES-ImageNet's
label lists, ...) name the files a dataset reads. They come with the
download, so they are data, not configuration: a line ``../../etc/passwd``
or ``/home/me/.ssh/id_rsa`` must not make a dataset read a file outside the
folder the user pointed it at. Neither may a symbolic link inside the data
root that leads out of it (an archive can carry one).

Rules (:func:`resolve_inside`):

* a listed path is relative, has no NUL byte, and no ``..`` step leads
  above the data root;
* the file it names, with every symbolic link on the way followed, lies
  inside the data root, itself with its links followed. So a data root that
  is itself a symbolic link (``data/NMNIST -> /mnt/big/NMNIST``) works, and
  links between folders inside it work; a link leaving it is refused.

Refusals are :class:`~bidl_train.errors.DataError` naming the annotation
file (or the folder a scanned file was found in) and the line or entry.
"""
import io
import os

from bidl_train.errors import DataError

LINK_HELP = ('copy the file into the data root, or point data_root at the '
             'folder that holds the real files')


def open_annotation(path):
    """An annotation file as a text stream (``newline=''``, as ``csv``
    wants; line iteration splits at any line end), refusing bytes that are
    not UTF-8 with a DataError instead of a UnicodeDecodeError. A missing
    file raises FileNotFoundError as ``open`` does."""
    with open(path, 'rb') as f:
        data = f.read()
    try:
        text = data.decode('utf-8')
    except UnicodeDecodeError as err:
        raise DataError(f'not UTF-8 text ({err.reason} at byte {err.start}); '
                        'the file is damaged, download or extract it again',
                        path=path, offset=err.start) from None
    return io.StringIO(text, newline='')


def _where(line):
    return f'line {line}: ' if line is not None else ''


def check_relative(relpath, source=None, line=None):
    """Refuse a listed path that is absolute, empty, holds a NUL byte or
    climbs above the folder it is relative to (no file system access)."""
    where = _where(line)
    if not isinstance(relpath, str) or not relpath.strip():
        raise DataError(f'{where}empty file name {relpath!r}', path=source)
    if '\0' in relpath:
        raise DataError(f'{where}file name {relpath!r} holds a NUL byte',
                        path=source)
    if os.path.isabs(relpath) or relpath.startswith(('/', '\\')):
        raise DataError(
            f'{where}{relpath!r} is an absolute path; entries of an '
            'annotation file must be relative to the data root', path=source)
    parts = os.path.normpath(relpath).replace('\\', '/').split('/')
    if parts and parts[0] == '..':
        raise DataError(
            f'{where}{relpath!r} leads outside the data root (".." steps); '
            'entries of an annotation file must name files inside it',
            path=source)
    return relpath


def _inside(path, root):
    try:
        return os.path.commonpath([path, root]) == root
    except ValueError:  # different drives (Windows)
        return False


def resolve_inside(root, relpath, source=None, line=None):
    """``root/relpath`` after checking it stays inside ``root``.

    Args:
        root: the data root (or a folder inside it that ``relpath`` is
            relative to; the links of ``root`` itself are allowed).
        relpath: the path as listed in an annotation file (or a scanned
            file's path relative to ``root``).
        source: the annotation file, named in the error.
        line: its line number (or None).

    Returns the joined path (unresolved, so messages show what the user
    wrote). Raises DataError on a path that leaves ``root`` lexically or
    through a symbolic link.
    """
    check_relative(relpath, source, line)
    root = os.fspath(root)
    path = os.path.join(root, relpath)
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)
    if not _inside(real, real_root):
        raise DataError(
            f'{_where(line)}{relpath!r} is (or lies under) a symbolic link '
            f'to {real}, outside the data root {root}; {LINK_HELP}',
            path=source if source is not None else path)
    return path


def scan_inside(root, folder):
    """Sorted ``(name, path)`` of the entries of ``folder`` (a folder under
    ``root``), refusing entries that are symbolic links leading out of
    ``root``.

    Only entries that are links are resolved (``os.scandir`` reports that
    without a further system call), so scanning a large folder stays as
    cheap as ``os.listdir``.
    """
    root = os.fspath(root)
    rel_folder = os.path.relpath(folder, root)
    resolve_inside(root, rel_folder, source=folder)
    found = []
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.is_symlink():
                resolve_inside(root, os.path.join(rel_folder, entry.name),
                               source=folder)
            found.append((entry.name, entry.path))
    return sorted(found)


def check_file_inside(root, path, source=None, line=None):
    """:func:`resolve_inside` for an already joined ``path`` under
    ``root``; cheap when ``path`` is no link (one ``lstat``) and its
    folder was checked already."""
    if not os.path.islink(path):
        return path
    return resolve_inside(root, os.path.relpath(path, root), source, line)
