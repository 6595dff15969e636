"""``python -m bench`` = ``./reel2rig bench``: see bench/run.py (``perception``: bench/perception.py, ``fit``:
bench/fit.py, ``batch``: bench/batch.py, ``stage-memory``: bench/stage_memory.py, ``detector-errors``: bench/detector_errors.py,
``throughput``: bench/throughput.py, ``shape``: bench/shape.py, ``fast-figure``: bench/fast_figure.py)."""
import sys

if len(sys.argv) > 1 and sys.argv[1] == "fit":
    from bench.fit import main as fit_main

    sys.exit(fit_main(sys.argv[2:]))

if len(sys.argv) > 1 and sys.argv[1] == "batch":
    from bench.batch import main as batch_main

    sys.exit(batch_main(sys.argv[2:]))

if len(sys.argv) > 1 and sys.argv[1] == "stage-memory":
    from bench.stage_memory import main as stage_memory_main

    sys.exit(stage_memory_main(sys.argv[2:]))

if len(sys.argv) > 1 and sys.argv[1] == "detector-errors":
    from bench.detector_errors import main as detector_errors_main

    sys.exit(detector_errors_main(sys.argv[2:]))

if len(sys.argv) > 1 and sys.argv[1] == "throughput":
    from bench.throughput import main as throughput_main

    sys.exit(throughput_main(sys.argv[2:]))

if len(sys.argv) > 1 and sys.argv[1] == "fast-figure":
    from bench.fast_figure import main as fast_figure_main

    sys.exit(fast_figure_main(sys.argv[2:]))

if len(sys.argv) > 1 and sys.argv[1] == "shape":
    from bench.shape import main as shape_main

    sys.exit(shape_main(sys.argv[2:]))

if len(sys.argv) > 1 and sys.argv[1] == "perception":
    from bench.perception import main as perception_main

    sys.exit(perception_main(sys.argv[2:]))

from bench.run import main  # noqa: E402

sys.exit(main())
