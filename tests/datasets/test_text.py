"""Text datasets: tokenizer, vocabulary, IMDB / CSV readers, synthetic set.

Every expectation here is computed by hand or by an independent loop in the
test, on files the test writes itself in the published layout.
"""
import json
import os
import os.path as osp
from collections import Counter

import numpy as np
import pytest
import torch
from mmengine.dataset import default_collate

from bidl_train.datasets.synthetic.text import (NEGATIONS, NEGATIVE,
                                                POSITIVE,
                                                make_synthetic_reviews)
from bidl_train.datasets.text import (IMDB, SyntheticIMDB,
                                      TextClassificationCSV, Vocabulary,
                                      pad_or_truncate, tokenize)
from bidl_train.errors import DataError
from bidl_train.registry import DATASETS


def test_tokenizer_hand_example():
    text = "A <br />GREAT film, isn't it?<br/>Yes!!"
    assert tokenize(text) == [
        'a', 'great', 'film', ',', "isn't", 'it', '?', 'yes', '!', '!'
    ]


def test_vocabulary_top_k_ties_unknown_pad():
    docs = [['b', 'a', 'c', 'a'], ['c', 'd', 'b'], ['e']]
    # counts: a2 b2 c2 d1 e1 -> ranked a, b, c (ties alphabetical), d, e
    vocab = Vocabulary.build(docs, size=4)
    assert vocab.tokens == ['a', 'b', 'c', 'd']
    assert vocab.pad_id == 0 and vocab.unk_id == 5
    assert vocab.num_embeddings == 6
    assert vocab.encode(['d', 'e', 'a', 'zzz']) == [4, 5, 1, 5]
    # order of documents does not change the result
    assert Vocabulary.build(docs[::-1], size=4).tokens == vocab.tokens


def test_vocabulary_smaller_corpus_keeps_unknown_at_k_plus_1(tmp_path):
    vocab = Vocabulary.build([['x', 'y']], size=10)
    assert vocab.tokens == ['x', 'y'] and vocab.unk_id == 11
    path = tmp_path / 'v.json'
    vocab.save(str(path))
    loaded = Vocabulary.load(str(path))
    assert loaded.tokens == ['x', 'y'] and loaded.size == 10
    with open(path) as f:
        assert json.load(f)['unk_id'] == 11


def test_vocabulary_load_rejects_foreign_json(tmp_path):
    path = tmp_path / 'v.json'
    path.write_text('{"a": 1}')
    with pytest.raises(DataError, match='v.json'):
        Vocabulary.load(str(path))


def test_pad_and_truncate_follow_bidl():
    arr, n = pad_or_truncate([7, 8, 9], 5)
    assert arr.tolist() == [0, 0, 7, 8, 9] and n == 3
    arr, n = pad_or_truncate([1, 2, 3, 4, 5, 6, 7], 5)
    assert arr.tolist() == [1, 2, 3, 4, 5] and n == 5
    arr, n = pad_or_truncate([1, 2, 3, 4, 5, 6, 7], 5, truncate_side='pre')
    assert arr.tolist() == [3, 4, 5, 6, 7]
    arr, n = pad_or_truncate([7, 8], 4, pad_side='post')
    assert arr.tolist() == [7, 8, 0, 0] and n == 2


def _write(path, text):
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'w', encoding='utf-8') as f:
        f.write(text)


def _tiny_imdb(root):
    a = osp.join(root, 'aclImdb')
    _write(osp.join(a, 'train', 'pos', '10_9.txt'), 'Good good film.')
    _write(osp.join(a, 'train', 'pos', '2_8.txt'), 'A good<br />one')
    _write(osp.join(a, 'train', 'neg', '0_1.txt'), 'Bad film!')
    _write(osp.join(a, 'test', 'pos', '0_10.txt'), 'good unseenword')
    _write(osp.join(a, 'test', 'neg', '3_2.txt'), 'bad bad bad bad film')


def test_imdb_reader_labels_vocab_from_train_only(tmp_path):
    _tiny_imdb(str(tmp_path))
    train = IMDB(str(tmp_path), 'train', vocab_size=4, max_len=4)
    # train tokens: good x3, film x2, '.' x1, a x1, one x1, bad x1, '!' x1
    # ranked: good, film, then ties of 1 alphabetical: '!', '.', 'a', ...
    assert train.vocab.tokens == ['good', 'film', '!', '.']
    assert train.metainfo['classes'] == ['neg', 'pos']
    assert len(train) == 3
    # order: neg first, then pos by numeric id (2 before 10)
    s0, s1, s2 = train[0], train[1], train[2]
    assert (s0['label'], s1['label'], s2['label']) == (0, 1, 1)
    assert (s1['review_id'], s1['rating']) == (2, 8)
    unk = 5
    assert s0['inputs'].tolist() == [0, unk, 2, 3]  # bad film ! (pre-pad)
    assert s0['length'] == 3
    assert s1['inputs'].tolist() == [0, unk, 1, unk]  # a good one
    assert s2['inputs'].tolist() == [1, 1, 2, 4]
    assert s2['inputs'].dtype == torch.int64

    vocab_file = osp.join(str(tmp_path), '.cache', 'imdb_vocab_4.json')
    assert osp.isfile(vocab_file)
    test = IMDB(str(tmp_path), 'test', vocab_size=4, max_len=3)
    assert test.vocab.tokens == train.vocab.tokens
    # 'bad bad bad bad film' truncated at the end to 3 tokens
    assert test[0]['inputs'].tolist() == [unk, unk, unk]
    assert test[0]['length'] == 3
    assert test[1]['inputs'].tolist() == [0, 1, unk]

    batch = default_collate([train[0], train[2]])
    assert batch['inputs'].shape == (2, 4)
    assert batch['label'].tolist() == [0, 1]


def test_imdb_test_split_first_builds_vocab_from_train(tmp_path):
    _tiny_imdb(str(tmp_path))
    test = IMDB(str(tmp_path), 'test', vocab_size=4, max_len=3)
    assert test.vocab.tokens == ['good', 'film', '!', '.']


def test_imdb_vocab_size_mismatch_is_an_error(tmp_path):
    _tiny_imdb(str(tmp_path))
    vf = str(tmp_path / 'v.json')
    IMDB(str(tmp_path), 'train', vocab_size=4, vocab_file=vf)
    with pytest.raises(DataError, match='v.json'):
        IMDB(str(tmp_path), 'train', vocab_size=3, vocab_file=vf)


def test_imdb_empty_file_and_bad_names_raise(tmp_path):
    _tiny_imdb(str(tmp_path))
    empty = osp.join(str(tmp_path), 'aclImdb', 'train', 'neg', '5_2.txt')
    _write(empty, '  \n')
    with pytest.raises(DataError, match='5_2.txt'):
        IMDB(str(tmp_path), 'train')
    os.remove(empty)
    odd = osp.join(str(tmp_path), 'aclImdb', 'train', 'neg', 'notes.txt')
    _write(odd, 'hello')
    with pytest.raises(DataError, match='notes.txt'):
        IMDB(str(tmp_path), 'train')


def test_imdb_missing_root_explains(tmp_path):
    with pytest.raises(DataError, match='aclImdb'):
        IMDB(str(tmp_path), 'train')


def test_csv_reader_names_header_quotes(tmp_path):
    train = tmp_path / 'train.csv'
    train.write_text('label,text\n'
                     'sports,"Goal, goal!"\n'
                     'news,the vote\n'
                     '\n'
                     'sports,goal\n')
    (tmp_path / 'test.csv').write_text('news,"goal, vote"\n')
    ds = TextClassificationCSV(str(tmp_path), 'train.csv', vocab_size=3,
                               max_len=4)
    assert ds.metainfo['classes'] == ['news', 'sports']
    assert [ds[i]['label'] for i in range(3)] == [1, 0, 1]
    # counts: goal 3, ',' 1, '!' 1, the 1, vote 1 -> goal, '!', ','
    assert ds.vocab.tokens == ['goal', '!', ',']
    assert ds[0]['inputs'].tolist() == [1, 3, 1, 2]
    te = TextClassificationCSV(str(tmp_path), 'test.csv', vocab_size=3,
                               max_len=4, classes=['news', 'sports'])
    assert te[0]['inputs'].tolist() == [0, 1, 3, 4] and te[0]['label'] == 0


def test_csv_single_file_integer_labels(tmp_path):
    f = tmp_path / 'all.csv'
    f.write_text('2,c c\n0,a\n')
    ds = TextClassificationCSV(str(f), vocab_size=5, max_len=2)
    assert ds.metainfo['classes'] == ['0', '1', '2']
    assert [ds[0]['label'], ds[1]['label']] == [2, 0]


def test_csv_label_outside_classes_raises_naming_file(tmp_path):
    f = tmp_path / 'train.csv'
    f.write_text('pos,fine\nmaybe,hmm\n')
    with pytest.raises(DataError, match=r'train\.csv.*line 2'):
        TextClassificationCSV(str(f), classes=['neg', 'pos'])
    f.write_text('pos,\n')
    with pytest.raises(DataError, match='train.csv'):
        TextClassificationCSV(str(f), classes=['neg', 'pos'])


def _bag_of_words_nb_accuracy(train, test):
    """Multinomial naive Bayes on word counts (order-blind reference)."""
    vocab = sorted({w for toks, _ in train for w in toks})
    idx = {w: i for i, w in enumerate(vocab)}
    counts = np.ones((2, len(vocab)))
    for toks, y in train:
        for w in toks:
            counts[y, idx[w]] += 1
    logp = np.log(counts / counts.sum(1, keepdims=True))
    correct = 0
    for toks, y in test:
        score = [sum(logp[c, idx[w]] for w in toks if w in idx)
                 for c in (0, 1)]
        correct += int(np.argmax(score) == y)
    return correct / len(test)


def _order_rule(tokens):
    """Positive iff the negated adjective is a negative one."""
    for a, b in zip(tokens, tokens[1:]):
        if a in NEGATIONS:
            return int(b in NEGATIVE)
    raise AssertionError('no negation in a synthetic review')


def test_synthetic_reviews_need_word_order(tmp_path):
    root = make_synthetic_reviews(str(tmp_path), num_train=400,
                                  num_test=200, seed=1)
    sets = {}
    for split in ('train', 'test'):
        items = []
        for y, cls in enumerate(('neg', 'pos')):
            folder = osp.join(root, split, cls)
            names = os.listdir(folder)
            assert len(names) == (200 if split == 'train' else 100)
            for name in names:
                rid, rating = name[:-4].split('_')
                assert (int(rating) >= 7) == bool(y)
                with open(osp.join(folder, name)) as f:
                    items.append((tokenize(f.read()), y))
        sets[split] = items
    # the order-aware rule is perfect ...
    assert all(_order_rule(t) == y for t, y in sets['test'])
    # ... every review has one positive and one negative adjective ...
    for toks, _ in sets['train']:
        c = Counter(toks)
        assert sum(c[w] for w in POSITIVE) == 1
        assert sum(c[w] for w in NEGATIVE) == 1
    # ... so an order-blind bag-of-words model is near chance.
    assert _bag_of_words_nb_accuracy(sets['train'], sets['test']) < 0.7


def test_synthetic_imdb_registered_and_generates_once(tmp_path):
    cfg = dict(type='SyntheticIMDB', data_root=str(tmp_path), num_train=20,
               num_test=10, max_len=16, vocab_size=30)
    ds = DATASETS.build(cfg)
    assert isinstance(ds, SyntheticIMDB) and len(ds) == 20
    mtime = os.path.getmtime(osp.join(str(tmp_path), 'aclImdb'))
    te = DATASETS.build(dict(cfg, split='test'))
    assert len(te) == 10
    assert os.path.getmtime(osp.join(str(tmp_path), 'aclImdb')) == mtime
    assert te[0]['inputs'].shape == (16, )
