"""Text classification datasets: one token per time step.

Sample contract
---------------
``__getitem__`` returns ``{'inputs': LongTensor[T], 'length': int, 'label': int}``
where ``T = num_steps`` (one token per step; ``max_len`` is accepted as its
old name, see :mod:`bidl_train.utils.time_steps`). Token ids:

* ``0``            padding,
* ``1 .. K``       the K most frequent training words (rank 1 = most frequent),
* ``K + 1``        unknown word (any word outside the top K),

so an embedding table needs ``K + 2`` rows whatever the corpus size.
``length`` is the number of real (non-padding) tokens, ``min(n, num_steps)``.

Padding and truncation follow BIDL's ``pre_imdb.py``: a review is padded at
the *front* (``[0, 0, ..., w1, w2, ...]``, so the last step of a recurrent
spiking network always sees the end of the review) and truncated at the
*end* (the first ``num_steps`` tokens are kept). Both ends are options
(``pad_side``, ``truncate_side``).

Tokenizer
---------
``tokenize(text)``: lower-case; HTML line breaks (``<br />``, ``<br/>``,
``<br>``) become spaces; a token is either a word (letters/digits, with an
inner apostrophe kept: ``don't``) or one punctuation character. Whitespace is
dropped. Deterministic, no external dependency.

Vocabulary
----------
Built from the TRAINING split only: words sorted by count (descending), ties
broken alphabetically (ascending) so the result does not depend on file
order; the first K are kept. Saved as JSON (``Vocabulary.save``) beside a
cache directory and reused by the test split and at deploy time. BIDL builds
its vocabulary from train and test together; we do not, because that leaks
test words into training.

Layouts
-------
* IMDB (``aclImdb``): ``<root>/aclImdb/{train,test}/{pos,neg}/<id>_<rating>.txt``
  (``<root>`` may also be the ``aclImdb`` folder itself). Classes
  ``['neg', 'pos']`` (BIDL's order): neg = 0, pos = 1.
* CSV: rows ``label,text`` (RFC 4180 quoting; an optional header row
  ``label,text``). ``label`` is a class name or an integer index.
"""
import csv
import json
import os
import os.path as osp
import re
from collections import Counter

import numpy as np
import torch
from torch.utils.data import Dataset

from bidl_train.errors import ConfigError, DataError
from bidl_train.registry import DATASETS, TRANSFORMS
from bidl_train.utils.time_steps import UNSET, resolve_num_steps

from .paths import scan_inside
from .pipeline import compose as _compose


PAD_ID = 0
VOCAB_FORMAT = 'bidl_train.vocabulary.v1'

_BREAK_RE = re.compile(r'<br\s*/?>', re.IGNORECASE)
# A word (letters/digits, apostrophes only inside a word) or one other
# visible character (punctuation).
_TOKEN_RE = re.compile(r"[^\W_]+(?:'[^\W_]+)*|[^\w\s]|_")


def tokenize(text):
    """Split ``text`` into lower-case word and punctuation tokens.

    >>> tokenize("It's NOT good.<br />Never!")
    ["it's", 'not', 'good', '.', 'never', '!']
    """
    text = _BREAK_RE.sub(' ', text.lower())
    return _TOKEN_RE.findall(text)


class Vocabulary:
    """Top-K word list with the id scheme pad = 0, words 1..K, unknown = K+1.

    Args:
        tokens (list[str]): the kept words, most frequent first; word
            ``tokens[i]`` has id ``i + 1``.
        size (int): K, the number of word slots. ``len(tokens) <= size``
            (a small corpus may have fewer distinct words); the unknown id is
            ``size + 1`` regardless, so model sizes do not depend on the data.
    """

    def __init__(self, tokens, size):
        if len(tokens) > size:
            raise ValueError(f'{len(tokens)} tokens do not fit a vocabulary '
                             f'of size {size}')
        if len(set(tokens)) != len(tokens):
            raise ValueError('vocabulary tokens must be unique')
        self.tokens = list(tokens)
        self.size = int(size)
        self._ids = {tok: i + 1 for i, tok in enumerate(self.tokens)}

    @property
    def pad_id(self):
        return PAD_ID

    @property
    def unk_id(self):
        return self.size + 1

    @property
    def num_embeddings(self):
        """Rows an embedding table needs: pad + K words + unknown."""
        return self.size + 2

    @classmethod
    def build(cls, token_lists, size):
        """Count words over ``token_lists`` and keep the top ``size``.

        Ties in count are broken by the word itself (ascending), so the
        vocabulary is independent of document order.
        """
        counts = Counter()
        for tokens in token_lists:
            counts.update(tokens)
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        return cls([word for word, _ in ranked[:size]], size)

    def encode(self, tokens):
        """Map tokens to ids (unknown words to ``unk_id``)."""
        unk = self.unk_id
        return [self._ids.get(tok, unk) for tok in tokens]

    def save(self, path):
        """Write the vocabulary as JSON (atomically: temp file + rename)."""
        os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
        payload = dict(
            format=VOCAB_FORMAT,
            size=self.size,
            pad_id=self.pad_id,
            unk_id=self.unk_id,
            tokens=self.tokens)
        tmp = f'{path}.tmp{os.getpid()}'
        with open(tmp, 'w', encoding='utf-8') as f:
            json.dump(payload, f, ensure_ascii=False)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path):
        """Read a vocabulary written by :meth:`save`."""
        try:
            with open(path, encoding='utf-8') as f:
                payload = json.load(f)
        except FileNotFoundError:
            raise DataError('vocabulary file not found; build it from the '
                            'training split first', path=path) from None
        except json.JSONDecodeError as e:
            raise DataError(f'not a JSON vocabulary ({e}); delete it so it '
                            'is rebuilt', path=path) from None
        if not isinstance(payload, dict) or payload.get(
                'format') != VOCAB_FORMAT:
            raise DataError(
                f'not a bidl-train vocabulary (expected format '
                f'{VOCAB_FORMAT!r}); delete it so it is rebuilt', path=path)
        try:
            return cls(payload['tokens'], payload['size'])
        except (KeyError, ValueError) as e:
            raise DataError(f'corrupt vocabulary ({e}); delete it so it is '
                            'rebuilt', path=path) from None


def pad_or_truncate(ids, max_len, pad_side='pre', truncate_side='post'):
    """Fit ``ids`` into exactly ``max_len`` steps.

    Returns ``(int64 array [max_len], length)``, ``length`` = number of real
    tokens kept. ``truncate_side='post'`` keeps the first ``max_len`` tokens,
    ``'pre'`` the last; ``pad_side='pre'`` puts the padding zeros in front.
    """
    if pad_side not in ('pre', 'post') or truncate_side not in ('pre',
                                                                'post'):
        raise ValueError("pad_side and truncate_side must be 'pre' or 'post'")
    if len(ids) > max_len:
        ids = ids[:max_len] if truncate_side == 'post' else ids[-max_len:]
    out = np.full(max_len, PAD_ID, dtype=np.int64)
    n = len(ids)
    if n:
        if pad_side == 'pre':
            out[max_len - n:] = ids
        else:
            out[:n] = ids
    return out, n


def _read_text(path):
    """Read one document; an empty (whitespace-only) file is an error."""
    try:
        with open(path, encoding='utf-8') as f:
            text = f.read()
    except UnicodeDecodeError as e:
        raise DataError(f'not UTF-8 text ({e})', path=path) from None
    if not text.strip():
        raise DataError('empty text file; delete it or restore its content',
                        path=path)
    return text


class _TokenSequenceDataset(Dataset):
    """Shared ``__getitem__`` for datasets of (token list, label) pairs.

    Subclasses fill ``self._token_lists``, ``self._labels``, ``self._extra``
    (per-sample dict of extra keys) and set ``self.vocab``.
    """

    #: tokens per sample when the config gives none (BIDL's IMDB: 500)
    DEFAULT_NUM_STEPS = 500

    def __init__(self, classes, num_steps, max_len, pad_side, truncate_side,
                 pipeline):
        self._classes = list(classes)
        self.num_steps = self._num_steps(num_steps, max_len)
        self.pad_side = pad_side
        self.truncate_side = truncate_side
        self.pipeline = _compose(pipeline)

    @classmethod
    def _num_steps(cls, num_steps, max_len):
        steps = resolve_num_steps(cls.__name__, num_steps, max_len=max_len,
                                  default=cls.DEFAULT_NUM_STEPS)
        if steps is None or int(steps) < 1:
            raise ConfigError(f'{cls.__name__}: num_steps (tokens per '
                              f'sample) must be >= 1, got {steps!r}')
        return int(steps)

    @classmethod
    def stated_num_steps(cls, cfg):
        """``num_steps`` (old name ``max_len``) of a config of this class:
        every sample is padded or truncated to it."""
        return cls._num_steps(cfg.get('num_steps', UNSET),
                              cfg.get('max_len', UNSET))

    @property
    def metainfo(self):
        return dict(
            classes=list(self._classes),
            vocab_size=self.vocab.size,
            num_embeddings=self.vocab.num_embeddings,
            pad_id=self.vocab.pad_id,
            unk_id=self.vocab.unk_id,
            num_steps=self.num_steps)

    def __len__(self):
        return len(self._labels)

    def __getitem__(self, idx):
        idx = range(len(self))[idx]  # negative indices, IndexError
        ids = self.vocab.encode(self._token_lists[idx])
        arr, length = pad_or_truncate(ids, self.num_steps, self.pad_side,
                                      self.truncate_side)
        results = dict(
            inputs=torch.from_numpy(arr),
            length=length,
            label=int(self._labels[idx]),
            sample_idx=idx)
        results.update(self._extra[idx])
        return self.pipeline(results)


def _vocab_for(vocab_file, size, training_token_lists):
    """Load ``vocab_file`` or build it from the training tokens and save it.

    ``training_token_lists`` is a zero-argument callable so the (slow) read
    of the training split happens only when the cache is missing.
    """
    if osp.isfile(vocab_file):
        vocab = Vocabulary.load(vocab_file)
        if vocab.size != size:
            raise DataError(
                f'vocabulary has size {vocab.size} but vocab_size={size} was '
                'asked; pass the matching vocab_size or another vocab_file',
                path=vocab_file)
        return vocab
    vocab = Vocabulary.build(training_token_lists(), size)
    vocab.save(vocab_file)
    return vocab


_IMDB_NAME_RE = re.compile(r'^(\d+)_(\d+)\.txt$')


def _imdb_root(data_root):
    """Accept either the folder holding ``aclImdb`` or ``aclImdb`` itself."""
    nested = osp.join(data_root, 'aclImdb')
    if osp.isdir(nested):
        return nested
    if osp.isdir(osp.join(data_root, 'train')):
        return data_root
    raise DataError(
        'no aclImdb folder here; download aclImdb_v1.tar.gz (Stanford Large '
        'Movie Review Dataset) and extract it so that '
        '<data_root>/aclImdb/train/pos exists, or use SyntheticIMDB for a '
        'demo', path=data_root)


def _read_imdb_split(root, split):
    """Return ``(texts, labels, extras)`` of ``<root>/<split>/{neg,pos}``.

    Files are ordered by class then numeric id, so sample order does not
    depend on the file system.
    """
    texts, labels, extras = [], [], []
    for label, cls in enumerate(IMDB.CLASSES):
        folder = osp.join(root, split, cls)
        if not osp.isdir(folder):
            raise DataError(f'missing folder {split}/{cls} of the aclImdb '
                            'layout', path=folder)
        entries = []
        for name, path in scan_inside(root, folder):
            if not osp.isfile(path):
                continue
            m = _IMDB_NAME_RE.match(name)
            if m is None:
                raise DataError(
                    'file name does not follow <id>_<rating>.txt; move it '
                    'out of the dataset folder', path=path)
            entries.append((int(m.group(1)), int(m.group(2)), path))
        if not entries:
            raise DataError('no <id>_<rating>.txt reviews in this folder',
                            path=folder)
        for review_id, rating, path in sorted(entries):
            texts.append(_read_text(path))
            labels.append(label)
            extras.append(dict(review_id=review_id, rating=rating))
    return texts, labels, extras


@DATASETS.register_module()
class IMDB(_TokenSequenceDataset):
    """Stanford Large Movie Review Dataset (aclImdb), sentiment, 2 classes.

    Args:
        data_root (str): folder holding ``aclImdb/`` (or ``aclImdb`` itself).
        split (str): ``'train'`` or ``'test'``.
        vocab_size (int): K, the number of words kept (BIDL: 999).
        num_steps (int): T, tokens per sample (BIDL: 500); ``max_len`` is
            its old name.
        vocab_file (str | None): vocabulary JSON. Default
            ``<cache_dir>/imdb_vocab_<K>.json``; built from the training
            split when missing, whichever split is read first.
        cache_dir (str | None): default ``<data_root>/.cache``.
        pad_side, truncate_side: see :func:`pad_or_truncate`.
        pipeline (list): transforms applied to the sample dict.

    Samples carry ``review_id`` and ``rating`` (from the file name) too.
    """

    CLASSES = ('neg', 'pos')

    def __init__(self,
                 data_root,
                 split='train',
                 vocab_size=999,
                 num_steps=UNSET,
                 vocab_file=None,
                 cache_dir=None,
                 pad_side='pre',
                 truncate_side='post',
                 pipeline=(),
                 max_len=UNSET):
        if split not in ('train', 'test'):
            raise DataError(f"split must be 'train' or 'test', got {split!r}",
                            path=data_root)
        super().__init__(self.CLASSES, num_steps, max_len, pad_side,
                         truncate_side, pipeline)
        self.data_root = data_root
        self.split = split
        root = _imdb_root(data_root)
        cache_dir = cache_dir or osp.join(data_root, '.cache')
        self.vocab_file = vocab_file or osp.join(
            cache_dir, f'imdb_vocab_{vocab_size}.json')

        texts, self._labels, self._extra = _read_imdb_split(root, split)
        self._token_lists = [tokenize(t) for t in texts]

        def training_tokens():
            if split == 'train':
                return self._token_lists
            train_texts, _, _ = _read_imdb_split(root, 'train')
            return [tokenize(t) for t in train_texts]

        self.vocab = _vocab_for(self.vocab_file, vocab_size, training_tokens)


def _read_label_text_csv(path):
    """Rows ``(line_no, label_str, text)`` of a ``label,text`` CSV."""
    rows = []
    try:
        with open(path, encoding='utf-8', newline='') as f:
            reader = csv.reader(f)
            for row in reader:
                line = reader.line_num
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue  # blank line between records
                if len(row) < 2:
                    raise DataError(
                        f'line {line}: expected "label,text", got '
                        f'{len(row)} field(s); quote texts that hold commas',
                        path=path)
                label, text = row[0].strip(), ','.join(row[1:])
                if not rows and label.lower() == 'label' and \
                        text.strip().lower() == 'text':
                    continue  # header
                if not text.strip():
                    raise DataError(f'line {line}: empty text', path=path)
                rows.append((line, label, text))
    except FileNotFoundError:
        raise DataError('CSV file not found', path=path) from None
    except (UnicodeDecodeError, csv.Error) as e:
        raise DataError(f'unreadable CSV ({e})', path=path) from None
    if not rows:
        raise DataError('no "label,text" rows in this file', path=path)
    return rows


@DATASETS.register_module()
class TextClassificationCSV(_TokenSequenceDataset):
    """Text classification from ``label,text`` CSV files.

    Args:
        data_root (str): a folder holding ``ann_file`` and ``train_file``,
            or one CSV file (then it is both).
        ann_file (str): CSV of this split, relative to ``data_root``.
        train_file (str): CSV the vocabulary is built from (training split
            only), relative to ``data_root``.
        classes (list[str] | None): class names; a label is a name from this
            list or an integer index into it. When None: integer labels give
            ``['0', ..., str(max)]``, names give the sorted names of the
            TRAINING file. Labels outside the list raise ``DataError``.
        vocab_size, num_steps (old name max_len), vocab_file, cache_dir,
        pad_side, truncate_side, pipeline: as :class:`IMDB`; the default
            vocab file is ``<cache_dir>/<train stem>_vocab_<K>.json``.
    """

    def __init__(self,
                 data_root,
                 ann_file='train.csv',
                 train_file='train.csv',
                 classes=None,
                 vocab_size=999,
                 num_steps=UNSET,
                 vocab_file=None,
                 cache_dir=None,
                 pad_side='pre',
                 truncate_side='post',
                 pipeline=(),
                 max_len=UNSET):
        if osp.isfile(data_root):
            folder = osp.dirname(osp.abspath(data_root))
            ann_path = train_path = data_root
        else:
            folder = data_root
            ann_path = osp.join(data_root, ann_file)
            train_path = osp.join(data_root, train_file)
        rows = _read_label_text_csv(ann_path)
        train_rows = rows if osp.abspath(train_path) == osp.abspath(
            ann_path) else None

        def get_train_rows():
            nonlocal train_rows
            if train_rows is None:
                train_rows = _read_label_text_csv(train_path)
            return train_rows

        if classes is None:
            labels = [r[1] for r in get_train_rows()]
            if all(re.fullmatch(r'\d+', x) for x in labels):
                classes = [str(i) for i in range(max(map(int, labels)) + 1)]
            else:
                classes = sorted(set(labels))
        super().__init__(classes, num_steps, max_len, pad_side, truncate_side,
                         pipeline)
        self.data_root = data_root
        index = {name: i for i, name in enumerate(self._classes)}
        self._labels, self._token_lists, self._extra = [], [], []
        for line, label, text in rows:
            if label in index:
                y = index[label]
            elif re.fullmatch(r'\d+', label) and int(label) < len(classes):
                y = int(label)
            else:
                raise DataError(
                    f'line {line}: label {label!r} is not one of the '
                    f'{len(classes)} classes {list(classes)}; fix the row or '
                    'pass classes=[...]',
                    path=ann_path)
            self._labels.append(y)
            self._token_lists.append(tokenize(text))
            self._extra.append(dict(line=line))

        stem = osp.splitext(osp.basename(train_path))[0]
        cache_dir = cache_dir or osp.join(folder, '.cache')
        self.vocab_file = vocab_file or osp.join(
            cache_dir, f'{stem}_vocab_{vocab_size}.json')
        self.vocab = _vocab_for(
            self.vocab_file, vocab_size,
            lambda: [tokenize(r[2]) for r in get_train_rows()])


@DATASETS.register_module()
class SyntheticIMDB(IMDB):
    """IMDB reader over generated reviews (see ``synthetic/text.py``).

    On first use writes ``<data_root>/aclImdb`` with
    :func:`make_synthetic_reviews` (logging that the data is synthetic),
    then reads it with the real :class:`IMDB` reader. Extra keyword
    arguments go to :class:`IMDB`.
    """

    def __init__(self,
                 data_root,
                 split='train',
                 num_train=400,
                 num_test=200,
                 seed=0,
                 **kwargs):
        # Imported here: the generator is only needed by this demo class.
        from bidl_train.datasets.synthetic.ensure import ensure_generated
        from bidl_train.datasets.synthetic.text import make_synthetic_reviews
        # the vocabulary cache depends on the reviews: regenerate it too
        ensure_generated(
            data_root, 'SyntheticIMDB',
            dict(num_train=num_train, num_test=num_test, seed=seed),
            ['aclImdb'],
            lambda: make_synthetic_reviews(data_root, num_train, num_test,
                                           seed),
            derived=['.cache'])
        super().__init__(data_root, split=split, **kwargs)
