"""The distiller: from git repositories and installed packages to validated snippets.

One module per pipeline stage: ``candidates`` (the unit passed between stages),
``extract`` (find examples in files), ``assemble`` (make a block run alone),
``sandbox`` (run untrusted code), ``sources`` (git and package sources),
``refresh`` (the incremental pipeline that writes the library).
"""
