"""Command-line tools, one per module; their shared parts in runtime, inputs, outputs and tracking_options.
Shared rules: non-interactive; bad input → one line on stderr and exit code 2, with nothing half-written; heavy
libraries are imported only after the arguments are parsed (``--help`` is fast)."""
