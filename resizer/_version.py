"""The version, in a module of its own: ``import resizer`` can be a namespace package in editable
installs run outside the checkout (setuptools maps ``resizer.weights`` to the top-level
``weights/`` folder), where attributes of ``resizer/__init__.py`` are not there but submodules are.
"""

__version__ = "0.1.0"
