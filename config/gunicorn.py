"""gunicorn's settings hooks (Dockerfile: ``gunicorn -c config/gunicorn.py``): the metrics files of the
multiprocess mode (lib.metrics) start empty with the master, and a worker that exits leaves its live values."""

from lib import metrics


def on_starting(server) -> None:
    metrics.multiprocess_start()


def child_exit(server, worker) -> None:
    metrics.multiprocess_child_exit(worker.pid)
