"""`python -m tcpchat` runs the same command as the `tcpchat` script."""

from tcpchat.cli import main

main(prog_name="tcpchat")
