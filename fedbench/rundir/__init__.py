"""The run directory: one package that owns its place and layout (layout.py: path_for, the file names,
RunDir), its one-writer lock (lock.py), its checkpoint file (checkpoint.py) and the check that a
complete run's files agree with its summary (completion.py)."""
from fedbench.rundir.layout import (CHECKPOINT, CLIENTS, CONFIG, METRICS, NON_SCIENTIFIC, SUMMARY, TIMING, TRACKING,
                                    RunDir, config_hash, partition_tag, path_for, scientific_config)

__all__ = ["CHECKPOINT", "CLIENTS", "CONFIG", "METRICS", "NON_SCIENTIFIC", "SUMMARY", "TIMING", "TRACKING", "RunDir",
           "config_hash", "partition_tag", "path_for", "scientific_config"]
