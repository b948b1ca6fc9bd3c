"""Pickle payloads a checkpoint loader must refuse."""
import os


class RunsShell:

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}', ))
