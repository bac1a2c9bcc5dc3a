"""The mutation runner lives here; it is a script, not tests: nothing here is collected."""

collect_ignore_glob = ["*.py"]
