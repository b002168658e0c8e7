"""A one-file Django project served by tricorn-wsgi in the framework tests."""

from __future__ import annotations

import json

import django
from django.conf import settings

settings.configure(
    DEBUG=False,
    SECRET_KEY="tricorn-test-only",
    ROOT_URLCONF=__name__,
    ALLOWED_HOSTS=["*"],
    MIDDLEWARE=["django.middleware.common.CommonMiddleware"],
    INSTALLED_APPS=[],
    DATABASES={},
    USE_TZ=True,
)
django.setup()

from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.http import (  # noqa: E402
    HttpRequest,
    HttpResponse,
    JsonResponse,
    StreamingHttpResponse,
)
from django.urls import path  # noqa: E402
from django.views.decorators.csrf import csrf_exempt  # noqa: E402


def index(request: HttpRequest) -> HttpResponse:
    return HttpResponse("django ok")


@csrf_exempt
def echo(request: HttpRequest) -> JsonResponse:
    return JsonResponse({
        "method": request.method,
        "body": request.body.decode(),
        "query": request.GET.dict(),
        "host": request.get_host(),
        "secure": request.is_secure(),
        "path": request.path,
        "meta_remote": request.META.get("REMOTE_ADDR"),
        "json": json.loads(request.body) if request.content_type == "application/json" else None,
    })


@csrf_exempt
def upload(request: HttpRequest) -> JsonResponse:
    f = request.FILES["file"]
    return JsonResponse({"field": request.POST["field"], "size": f.size})


def stream(request: HttpRequest) -> StreamingHttpResponse:
    return StreamingHttpResponse((f"row{i}\n" for i in range(4)), content_type="text/plain")


def boom(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("django view failed")


urlpatterns = [
    path("", index),
    path("echo", echo),
    path("upload", upload),
    path("stream", stream),
    path("boom", boom),
]

application = get_wsgi_application()
