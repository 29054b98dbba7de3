# Warrant: one image for web (gunicorn), Celery worker and Celery beat.
FROM python:3.12-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=governance.settings.production

WORKDIR /app

COPY requirements.lock requirements-nodeps.txt ./
RUN pip install -r requirements.lock \
    && pip install --no-deps -r requirements-nodeps.txt

COPY . .

# Static files are collected at build time; the secret and hosts here are build-only placeholders
# (the running container reads its own from the environment).
RUN DJANGO_SECRET_KEY=collectstatic-only DJANGO_ALLOWED_HOSTS=localhost \
    python manage.py collectstatic --noinput --verbosity 0 \
    && useradd --system --uid 10001 --home-dir /app warrant \
    && mkdir -p /app/var && chown -R warrant /app/var

USER warrant
EXPOSE 8000
CMD ["gunicorn", "governance.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3", "--access-logfile", "-"]
