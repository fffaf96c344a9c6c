"""One package per chapter, named like its notebook (``book/04_trained_networks.ipynb`` ->
``lowrank_utils.chapters.ch04_trained_networks``), each with ``experiment.py`` (pure functions of a config returning
tidy DataFrames), ``figures.py`` (plots of those frames) and ``checks.py`` (the chapter's exercise checkers).

Code that several chapters share lives in the core modules of :mod:`lowrank_utils`, never in a chapter.
"""
