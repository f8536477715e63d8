"""`make run` = `python -m dodo_cio_local`: the bridge on this machine, AWS and Customer.io emulated.

Not part of the merchant CLI (`dodo-cio`): the emulator serves local runs and the tests only. The
CLI reaches a running emulator over HTTP (`dodo-cio dlq --local`, see dodo_cio_cli.local_target).
"""

from __future__ import annotations

from dodo_cio_local.command_line import main

if __name__ == "__main__":
    raise SystemExit(main())
