"""The methods of the book, built by one factory.

Every method is a ``torch.nn.Module`` with ``segment(images [B, 3, H, W], class_names) ->
[B, K, H, W]`` per-class scores at the input resolution (the shared contract of the book); its
inputs are checked first by ``ovnb.methods.contract.check_inputs``, the same for every method.

    >>> model = ovnb.methods.build("fusioner", visual="toy-clip-vit", text="toy-clip-vit",
    ...                            fusion="early", pretrained=True)
"""

from __future__ import annotations

METHODS = {
    "fusioner": "ovnb.methods.fusioner",
    "simbaseline": "ovnb.methods.simbaseline",
    "pnp_ovss": "ovnb.methods.pnp_ovss",
    "maskclip": "ovnb.methods.maskclip",
    "fcclip": "ovnb.methods.fcclip",
}


def names() -> list[str]:
    return list(METHODS)


def build(name: str, **config):
    """The method ``name`` built from ``config`` (see each method module's ``build``)."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; known methods: {', '.join(METHODS)}")
    import importlib

    return importlib.import_module(METHODS[name]).build(**config)


__all__ = ["build", "names", "METHODS"]
