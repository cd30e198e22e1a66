"""Tests of the ImageNet-1k class order read from timm's metadata."""

import pytest

from infocam.imagenet import imagenet_synsets, synset_file, wnid_indices
from infocam.models.backbones import imagenet_categories


def test_thousand_distinct_synsets_in_imagenet_order():
    wnids = imagenet_synsets()
    assert len(wnids) == 1000 and len(set(wnids)) == 1000
    assert wnids[0] == "n01440764" and wnids == tuple(sorted(wnids))  # sorted folder order of ILSVRC-2012


def test_order_agrees_with_torchvision_class_names():
    # timm's lemma file names each synset; torchvision's weight metadata names each output index
    lemma = dict(line.split("\t", 1) for line in
                 (synset_file().parent / "imagenet_synset_to_lemma.txt").read_text().splitlines() if "\t" in line)
    names = imagenet_categories()
    agree = sum(names[k].lower() in lemma[w].lower() for k, w in enumerate(imagenet_synsets()))
    assert agree >= 995  # two names are spelled differently ("crane bird", "maillot tank suit")


def test_wnid_indices():
    wnids = imagenet_synsets()
    assert wnid_indices([wnids[285], wnids[0], wnids[999]]) == [285, 0, 999]
    with pytest.raises(ValueError, match="not ImageNet-1k classes"):
        wnid_indices(["n01440764", "n00000001"])
