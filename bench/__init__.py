"""Benchmarks of semclust: clustering quality against baselines, and speed and memory of each stage.

Run ``python -m bench --help``. Results go to ``BENCHMARKS.md`` at the repository root and plots to
``bench/plots/``; downloaded-free datasets are written as image folders under ``bench/out/data/``.
"""
