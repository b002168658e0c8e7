"""Exec a command the way systemd does for a socket-activated service: the given descriptors become
3, 4, ... (inheritable), LISTEN_FDS is their count and LISTEN_PID this very pid (exec keeps it).

    python sd_exec.py FD [FD...] -- COMMAND [ARGS...]
"""

import fcntl
import os
import sys

split = sys.argv.index("--")
fds = [int(fd) for fd in sys.argv[1:split]]
argv = sys.argv[split + 1:]
# Move them out of the way first so that dup2 onto 3.. never clobbers one not yet moved.
high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 100) for fd in fds]
for index, fd in enumerate(high):
    os.dup2(fd, 3 + index, inheritable=True)
    os.close(fd)
os.environ["LISTEN_FDS"] = str(len(fds))
os.environ["LISTEN_PID"] = str(os.getpid())
os.execv(argv[0], argv)
