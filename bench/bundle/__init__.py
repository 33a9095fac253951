"""Trained-model bundles: a team trains once, and every runner benchmarks the very same weights.

``python -m bench.bundle export --tier T [--models a,b] --out DIR`` writes ``DIR/quantbench-T.tar``
and ``DIR/quantbench-T.tar.sha256`` (sha256sum format) from the trained float and QAT models in
the cache; it trains nothing. ``python -m bench.bundle import FILE (--sha256 HEX | --digest-file
PATH)`` verifies a bundle and puts its models in the cache under the keys this checkout computes,
so that ``bench.train`` and the bench reuse them ("reusing cached weights") instead of training.
Without a bundle, training stays the default.

A bundle is data, never code: an uncompressed tar, byte for byte the same for the same weights
(members sorted, mtime 0, uid and gid 0, mode 0644), holding

- ``manifest.json``: schema, tier, and per model and stage (``float``, ``qat``) the cache key,
  its label, the components of the key (model, architecture, recipe, data, training code and
  library versions; for QAT the float key, the QAT recipe and the code), the validation accuracy,
  the training time, where the weights were trained, and per tensor its file, variable name,
  dtype, shape and sha256;
- one ``.npy`` file per weight tensor, in the order of the model's ``weights``.

Import trusts nothing inside the bundle before the sha256 of the whole file matches a digest
that comes from outside it (a digest file committed in the repository, or ``--sha256``): a
tensor edited together with its manifest entry changes that digest. Then it compares the
manifest's keys with this checkout's, component by component; every tensor file with its
manifest entry; and the registered architecture's variables with the tensors, by name, shape and
dtype. The weights are assigned to the architecture this checkout registers, never loaded as a
model: no pickle (``allow_pickle=False``), no model config from the bundle. Cache entries are
written only once every model of the bundle has passed, so a refused bundle imports nothing.

Modules, one concern each:

- :mod:`~bench.bundle.archive`: the file (tar, ``.npy``, manifest, digest) and its checks,
  numpy and tarfile only;
- :mod:`~bench.bundle.checks`: this checkout's cache keys and registered models, which a bundle
  must match;
- :mod:`~bench.bundle.transfer`: export from the cache, and import into it;
- :mod:`~bench.bundle.cli`: the command line.
"""

from bench.bundle.archive import BundleError
from bench.bundle.cli import main
from bench.bundle.transfer import export, import_bundle

__all__ = ["BundleError", "export", "import_bundle", "main"]
