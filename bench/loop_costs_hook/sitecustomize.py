"""Put on PYTHONPATH by bench/loop_costs.py's users: Python imports `sitecustomize` at start-up,
and this one times the event loop of the programs LIVECHARTS_LOOP_COSTS_PROGRAMS names."""

import os
import sys

if os.environ.get("LIVECHARTS_LOOP_COSTS"):
    # The hook's folder is on the path, not the checkout: bench.loop_costs lives one level up.
    sys.path.append(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    from bench.loop_costs import install_from_environment

    install_from_environment(sys.argv[0] if sys.argv and sys.argv[0] else "")
