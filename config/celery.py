"""The Celery app. Its configuration, beat schedule included, is the CELERY_*
settings in config/settings.py, so that it is read from the environment like
everything else."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("flowsync")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
