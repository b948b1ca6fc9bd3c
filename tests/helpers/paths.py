"""Where the repository and the test tree are."""
import os.path as osp

TESTS = osp.dirname(osp.dirname(osp.abspath(__file__)))
REPO = osp.dirname(TESTS)
