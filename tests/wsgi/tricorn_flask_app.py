"""A small Flask application served by tricorn-wsgi in the framework tests."""

from __future__ import annotations

import hashlib

from flask import Flask, Response, jsonify, request, stream_with_context

app = Flask(__name__)


@app.get("/")
def index() -> str:
    return "flask ok"


@app.route("/json", methods=["POST"])
def echo_json() -> Response:
    return jsonify(got=request.get_json(), args=request.args.to_dict(),
                   scheme=request.scheme, remote=request.remote_addr)


@app.post("/form")
def form() -> Response:
    upload = request.files["file"]
    data = upload.read()
    return jsonify(field=request.form["field"], name=upload.filename, size=len(data),
                   sha256=hashlib.sha256(data).hexdigest())


@app.get("/stream")
def stream() -> Response:
    def gen():  # type: ignore[no-untyped-def]
        for i in range(5):
            yield f"chunk{i}\n"
    return Response(stream_with_context(gen()), mimetype="text/plain")


@app.get("/boom")
def boom() -> str:
    raise RuntimeError("flask view failed")


@app.get("/cookie")
def cookie() -> Response:
    resp = jsonify(seen=request.cookies.get("a"))
    resp.set_cookie("b", "2")
    return resp
