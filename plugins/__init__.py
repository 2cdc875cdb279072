"""Built-in plugins, one package each. ``app.plugins.BUILTIN_PLUGINS`` lists the ones loaded.

They register through the same hooks (``app.hookspecs``) as plugins installed from outside, so
each is also a working example for plugin authors (docs/plugins.md).
"""
