"""`python -m ftedge` (and `torchrun -m ftedge`) run the command line."""

from ftedge.cli import main

if __name__ == "__main__":
    main()
