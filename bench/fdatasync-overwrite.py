#!/usr/bin/env python3
"""fdatasync latency of 4 KiB writes that grow a file, against the same
writes over blocks already written with zeros and synced: why the raft log
keeps its active segment zero-filled ahead of its writes
(`LogOptions::zero_ahead_bytes`, docs/raft-log-format.md).

Usage: bench/fdatasync-overwrite.py [directory] [writes]
(default: target/, 2000 writes per mode; two rounds of each mode).
"""
import os
import sys
import time


def measure(directory, mode, writes, size=4096):
    path = os.path.join(directory, f"fdatasync-{mode}.tmp")
    if os.path.exists(path):
        os.remove(path)
    fd = os.open(path, os.O_CREAT | os.O_WRONLY)
    try:
        if mode == "overwrite":
            os.write(fd, b"\0" * (writes * size))
            os.fsync(fd)
            os.lseek(fd, 0, os.SEEK_SET)
        elif mode == "fallocate":
            os.posix_fallocate(fd, 0, writes * size)
            os.fsync(fd)
        block = b"x" * size
        latencies = []
        for _ in range(writes):
            os.write(fd, block)
            start = time.perf_counter()
            os.fdatasync(fd)
            latencies.append(time.perf_counter() - start)
    finally:
        os.close(fd)
        os.remove(path)
    latencies.sort()
    us = lambda s: f"{s * 1e6:6.0f}"
    print(f"{mode:10s} avg {us(sum(latencies) / writes)} us  p50 {us(latencies[writes // 2])}"
          f"  p99 {us(latencies[int(writes * 0.99)])}")


def main():
    directory = sys.argv[1] if len(sys.argv) > 1 else "target"
    writes = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    os.makedirs(directory, exist_ok=True)
    for _ in range(2):
        for mode in ("append", "fallocate", "overwrite"):
            measure(directory, mode, writes)


if __name__ == "__main__":
    main()
