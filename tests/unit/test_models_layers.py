"""ray_gan.models.layers: building blocks shared by the architectures."""

import torch


def test_minibatch_stddev_groups_consecutive_samples():
    from ray_gan.models.layers import MinibatchStdDev

    torch.manual_seed(0)
    a, b = torch.randn(8, 5, 4, 4), torch.randn(8, 5, 4, 4) * 3
    mb = MinibatchStdDev(group_size=4)
    joint = mb(torch.cat([a, b]))
    # the halves are scored as if alone: no group mixes reals with fakes
    assert torch.allclose(joint[:8], mb(a), atol=1e-6) and torch.allclose(joint[8:], mb(b), atol=1e-6)
    # the extra channel is the group's mean feature std (population), constant per group
    expect = a[:4].std(dim=0, unbiased=False).mean()
    assert torch.allclose(joint[:4, 5], expect.expand(4, 4, 4), atol=1e-5)
    assert not torch.allclose(joint[4, 5], joint[0, 5])
