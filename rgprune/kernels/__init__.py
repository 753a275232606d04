"""The kernels below ``rgprune.ops``, one job per module:

* ``format``: the mask, magnitude-key and threshold-info format (the Python twin of ``csrc/rgprune.h``);
* ``reference``: the pure-PyTorch reference, which defines what every kernel returns;
* ``extension``: loading the compiled ``rgprune._C`` (``csrc/cpu``, ``csrc/cuda``) and choosing it or the
  reference per device and op;
* ``fake``: the fake kernels that let ``torch.compile`` trace the compiled ops;
* ``layout``: dense tensors in permuted memory layouts (channels_last ...): their storage views and masks in
  storage order, so the kernels prune them in place with masks and ties in logical order.
"""
