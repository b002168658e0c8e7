"""Locustfile of the lab's fixed-load workloads: pick the user class on the command line."""

from lab.loadgen.users import (  # noqa: F401 - Locust collects the user classes of this module
    CpuUser,
    DownloadUser,
    HelloUser,
    IoUser,
    JsonUser,
    MixedUser,
    NoRetryHelloUser,
    UploadUser,
    WebSocketUser,
)
