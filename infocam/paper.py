"""The paper's numbers (Qin, Kim & Gedeon, arXiv 1911.10688): one module every chapter, the summary and
the localisation pipeline import, so no page types a paper number.

Only what the paper states: where the backbone behind a number is not recovered, the name says the
dataset and the method, not the network.
"""

CUB_PC_ACCURACY = 89.73  # % accuracy of PC-softmax, Inception-V3 train logits, imbalanced CUB-200-2011
CUB_PC_MEAN_CLASS = 87.69  # % mean per-class accuracy, same run
CUB_INFOCAM_TOP1_LOC = 55.83  # % Top-1 Loc, best infoCAM on CUB-200-2011 (Table 4)
TINY_INFOCAM_TOP1_LOC = 43.34  # % Top-1 Loc, best infoCAM on Tiny-ImageNet (Table 4)

# Keyed by the dataset key that recipes (``dataset.name``) and the localisation pipeline use.
INFOCAM_TOP1_LOC = {"cub": CUB_INFOCAM_TOP1_LOC, "tiny_imagenet": TINY_INFOCAM_TOP1_LOC}
DATASET_TITLES = {"cub": "CUB-200-2011", "tiny_imagenet": "Tiny-ImageNet"}
# The original code's infoCAM window per dataset: k = 4 on CUB's 14×14 maps, k = 3 on Tiny-ImageNet's 4×4.
INFOCAM_WINDOW = {"cub": 4, "tiny_imagenet": 3}
