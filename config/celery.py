"""The Celery app and the beat schedule.

Every periodic task is named here, in one place, with an ``expires`` so that a
beat tick that nobody picks up in time is dropped rather than piling up.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("flowsync")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

app.conf.beat_schedule = {
    "health-heartbeat": {
        "task": "health.tasks.heartbeat_task",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
}
