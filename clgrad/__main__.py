"""`python -m clgrad`: the same commands as the `clgrad` script."""
from .cli import main

main(prog_name="clgrad")
