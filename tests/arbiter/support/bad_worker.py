"""A worker class whose constructor raises (boot failure -> exit 3)."""


class BadWorker:
    def __init__(self, context: object) -> None:
        raise RuntimeError("cannot boot")

    def run(self) -> int:
        return 0
