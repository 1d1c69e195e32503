"""synth-celeba: CelebA's group structure (train 44/41/14/0.85 %), roles, and a usable LRG-1."""

from artifact.config import DatasetCfg
from artifact.data import load_dataset
from artifact.data.synth_celeba import CELEBA_COUNTS, synth_celeba_counts


def test_counts_follow_celeba_proportions():
    counts = synth_celeba_counts(1.0)
    assert counts["train"][3] >= 40
    for split, real in CELEBA_COUNTS.items():
        ours = counts[split]
        for o, r in zip(ours, real, strict=True):
            assert abs(o / sum(ours) - r / sum(real)) < 0.002
    assert 8000 <= sum(counts["train"]) <= 10000


def test_loaded_dataset_has_the_stated_groups_and_roles():
    data = load_dataset(DatasetCfg(name="synth-celeba", scale=0.25), None)
    assert tuple(data.train.group_counts()) == synth_celeba_counts(0.25)["train"]
    assert tuple(data.test.group_counts()) == synth_celeba_counts(0.25)["test"]
    assert (data.lrg1, data.lrg2, data.hrg) == (3, None, (0, 1, 2))
    assert data.lrg1_class == 1 and data.image_size == 32


def test_train_fraction_subsamples_train_only_stratified():
    from artifact.config import DatasetCfg
    from artifact.data import load_dataset

    full = load_dataset(DatasetCfg(name="synth-celeba", scale=0.5), None)
    tenth = load_dataset(DatasetCfg(name="synth-celeba", scale=0.5, train_fraction=0.1), None)
    assert [round(c / 10) for c in full.train.group_counts()] == [max(1, c) for c in tenth.train.group_counts()]
    assert tenth.val.group_counts() == full.val.group_counts()
