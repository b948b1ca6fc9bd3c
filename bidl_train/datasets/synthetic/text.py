"""Synthetic movie reviews in the aclImdb layout, where word ORDER matters.

Each review holds exactly two sentiment clauses, one built on a positive
adjective and one on a negative adjective, and exactly ONE of the two is
negated ("not", "never", "hardly"):

* positive review: the negative adjective is negated
  ("the plot was never boring . the acting was brilliant .")
* negative review: the positive adjective is negated
  ("the plot was boring . the acting was not brilliant .")

Adjectives, negation words, clause order and neutral filler sentences are
drawn from the same distributions for both classes, so the multiset of words
carries no information about the label: a bag-of-words classifier is at
chance, while a model that reads "not" *before* an adjective solves it.
Ratings follow aclImdb (pos 7..10, neg 1..4); some reviews contain
``<br /><br />`` like the real ones.

Files: ``<root>/aclImdb/{train,test}/{pos,neg}/<id>_<rating>.txt``.
"""
import os
import os.path as osp
import shutil

import numpy as np

POSITIVE = ('good', 'great', 'brilliant', 'moving', 'funny', 'exciting',
            'beautiful', 'clever')
NEGATIVE = ('bad', 'boring', 'awful', 'dull', 'silly', 'terrible', 'weak',
            'predictable')
NEGATIONS = ('not', 'never', 'hardly')
SUBJECTS = ('the plot', 'the acting', 'the script', 'the ending', 'this film',
            'the music', 'the cast', 'the story')
FILLERS = ('i saw it on a sunday .', 'my friend picked the tickets .',
           'it runs for two hours .', 'the cinema was full .',
           'it is based on a novel .', 'we watched it at home .')


def _clause(rng, adjective, negated):
    subject = SUBJECTS[rng.integers(len(SUBJECTS))]
    if negated:
        neg = NEGATIONS[rng.integers(len(NEGATIONS))]
        return f'{subject} was {neg} {adjective} .'
    return f'{subject} was {adjective} .'


def synthetic_review(rng, positive):
    """One review text; ``positive`` selects which adjective is negated."""
    pos_adj = POSITIVE[rng.integers(len(POSITIVE))]
    neg_adj = NEGATIVE[rng.integers(len(NEGATIVE))]
    clauses = [_clause(rng, pos_adj, negated=not positive),
               _clause(rng, neg_adj, negated=positive)]
    if rng.random() < 0.5:
        clauses.reverse()
    sentences = clauses + [
        FILLERS[i] for i in rng.choice(len(FILLERS), rng.integers(0, 3),
                                       replace=False)
    ]
    order = rng.permutation(len(sentences))
    parts = [sentences[i] for i in order]
    sep = ' <br /><br />' if rng.random() < 0.3 else ''
    return (sep + ' ').join(p.capitalize() for p in parts)


def make_synthetic_reviews(root, num_train=400, num_test=200, seed=0):
    """Write a balanced synthetic aclImdb under ``root/aclImdb``.

    ``num_train`` / ``num_test`` are totals per split (half pos, half neg).
    Written into a temporary folder then renamed, so a reader never sees a
    half-written dataset. Returns the ``aclImdb`` path.
    """
    rng = np.random.default_rng(seed)
    final = osp.join(root, 'aclImdb')
    tmp = osp.join(root, f'.aclImdb.tmp{os.getpid()}')
    shutil.rmtree(tmp, ignore_errors=True)
    for split, total in (('train', num_train), ('test', num_test)):
        for label, cls in enumerate(('neg', 'pos')):
            folder = osp.join(tmp, split, cls)
            os.makedirs(folder)
            n = total // 2 + (total % 2 if label == 1 else 0)
            for i in range(n):
                rating = int(rng.integers(7, 11) if label else rng.integers(
                    1, 5))
                text = synthetic_review(rng, positive=bool(label))
                with open(osp.join(folder, f'{i}_{rating}.txt'), 'w',
                          encoding='utf-8') as f:
                    f.write(text)
    try:
        os.replace(tmp, final)
    except OSError:
        # Another process finished first; keep its copy.
        shutil.rmtree(tmp, ignore_errors=True)
        if not osp.isdir(final):
            raise
    return final
