"""Side-by-side benchmarks of otloss against GeomLoss, POT and naive code.

Run all of them with ``python -m benchmarks`` (or ``make bench``); each script can also
run alone (``python -m benchmarks.bench_mmd``). Every script writes its own section of
``docs/benchmarks.md``.
"""
