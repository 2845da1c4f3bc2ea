"""The local-process backend: clusters as OS processes on this machine, state in SQLite."""
