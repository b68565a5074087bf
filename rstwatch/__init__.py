"""rstwatch: who sent each TCP reset, why, what each application saw, and what to change.

The Python API (imported on first use, so `import rstwatch` costs nothing):

    import rstwatch
    df = rstwatch.read("incident.pcap")          # pandas DataFrame, one row per finding
    rules = rstwatch.load_rules("./my-rules")    # built-ins plus a folder
    for batch in rstwatch.watch("eth0", duration=60):
        ...                                       # live: DataFrames as resets are decided

See docs/api.md.
"""
__version__ = "0.1.0"

__all__ = ["__version__", "read", "iter_findings", "load_rules", "watch", "RstwatchError"]

_API = {"read", "iter_findings", "load_rules", "watch", "RstwatchError"}


def __getattr__(name: str):
    # PEP 562: the API module (pandas, numpy, the readers) loads only when first used
    if name in _API:
        from . import api
        return getattr(api, name)
    raise AttributeError(f"module 'rstwatch' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _API)
