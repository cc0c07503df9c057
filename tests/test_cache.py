"""The frozen-feature cache: keyed by pixels, namespaced by encoder and weights, persisted in shards."""

import torch

from ovnb import cache


class Counter:
    def __init__(self):
        self.calls = 0
        self.images = 0

    def __call__(self, images):
        self.calls += 1
        self.images += len(images)
        return images.float().mean(dim=(2, 3))  # an "encoder": per-channel means


def test_hits_misses_and_order():
    c = cache.FeatureCache(None, "test")
    f = Counter()
    a = torch.randint(0, 255, (4, 3, 8, 8), dtype=torch.uint8)
    out1 = c.get(a, f)
    out2 = c.get(a[[2, 0]], f)
    assert f.images == 4 and c.hits == 2 and c.misses == 4
    assert torch.allclose(out2, out1[[2, 0]], atol=0.1)  # stored in float16
    assert torch.allclose(out1, a.float().mean(dim=(2, 3)), atol=0.1)


def test_an_augmented_image_misses_instead_of_reusing_stale_features():
    c = cache.FeatureCache(None, "test")
    f = Counter()
    a = torch.randint(0, 255, (1, 3, 8, 8), dtype=torch.uint8)
    c.get(a, f)
    flipped = a.flip(-1)
    jittered = (a.int() + 1).clamp(max=255).to(torch.uint8)
    out = c.get(torch.cat([flipped, jittered]), f)
    assert c.misses == 3 and c.hits == 0
    assert torch.allclose(out[1], jittered[0].float().mean(dim=(1, 2)), atol=0.1)


def test_disabled_cache_always_computes():
    c = cache.FeatureCache(None, "test", enabled=False)
    f = Counter()
    a = torch.zeros(2, 3, 4, 4, dtype=torch.uint8)
    c.get(a, f)
    c.get(a, f)
    assert f.images == 4 and len(c) == 0


def test_flush_and_reload(tmp_path):
    c = cache.FeatureCache(tmp_path, "space")
    f = Counter()
    a = torch.randint(0, 255, (3, 3, 8, 8), dtype=torch.uint8)
    ref = c.get(a, f)
    shard = c.flush()
    assert shard.name.startswith("shard-") and shard.suffix == ".pt" and c.flush() is None
    again = cache.FeatureCache(tmp_path, "space")
    g = Counter()
    assert torch.equal(again.get(a, g), ref) and g.images == 0
    other = cache.FeatureCache(tmp_path, "other-space")
    other.get(a, g)
    assert g.images == 3


def test_namespace_separates_weights_and_inputs():
    lin1, lin2 = torch.nn.Linear(4, 4), torch.nn.Linear(4, 4)
    assert cache.weights_fingerprint(lin1) != cache.weights_fingerprint(lin2)
    assert cache.weights_fingerprint(lin1) == cache.weights_fingerprint(lin1)
    a = cache.namespace(encoder="toy-clip-vit", weights="x", size=64, kind="visual-tokens")
    b = cache.namespace(encoder="toy-clip-vit", weights="x", size=128, kind="visual-tokens")
    assert a != b and a.startswith("toy-clip-vit-visual-tokens-")


def test_image_key_depends_on_dtype_shape_and_values():
    x = torch.zeros(3, 4, 4, dtype=torch.uint8)
    keys = {cache.image_key(x), cache.image_key(x.float()), cache.image_key(x.view(3, 2, 8)),
            cache.image_key(x + 1)}
    assert len(keys) == 4
