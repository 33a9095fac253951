"""The bench's cases: pytest modules that ship with the package, so every project gets them.

Run them from any project with quantbench installed (its plugin parametrizes them from
``--models``, ``--modes``, ``--backends`` and ``--tier``)::

    pytest --pyargs bench.cases --tier smoke            # or, in quantbench's own checkout,
    pytest bench/cases --tier smoke                     # the same folder by its path

or let the project's ini make ``pytest`` alone run them::

    [tool.pytest.ini_options]
    addopts = ["--pyargs"]
    testpaths = ["bench.cases"]

Reports, baselines and the lock are those of the project that runs pytest (:mod:`bench.project`).

* ``test_cases``: one case per model x mode x backend, and the cross-case gates;
* ``test_latency``: latency, throughput and the int8 speedup (marked ``latency``);
* ``test_speed_check``: the cheap int8 speed check of CI;
* ``test_portability``: every int8 ONNX file on every other ONNX runtime;
* ``test_reality``: the reference quantization math held against the real artifacts.
"""
